//! The configuration step: the region's config files resolved (inline or from a
//! ConfigMap) and checked with the worker's own parsers, before anything runs them.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::events::EventType;
use kube::Api;

use super::report::{publish, Draft};
use crate::config_check::{self, ConfigFiles};
use crate::crd::{ConfigSource, StackTachRegion};
use crate::status::{types, ConditionUpdate, Reason};
use crate::{redact, Context, Error, Result};

/// The text of one config file: inline, or the ConfigMap key it references.
async fn resolve(ctx: &Context, ns: &str, src: &Option<ConfigSource>) -> Result<Option<String>> {
    let Some(src) = src else { return Ok(None) };
    if let Some(text) = &src.inline {
        return Ok(Some(text.clone()));
    }
    let Some(r) = &src.config_map_ref else {
        return Ok(None);
    };
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let cm = cms
        .get_opt(&r.name)
        .await?
        .ok_or_else(|| Error::MissingReference(format!("ConfigMap {ns}/{} not found", r.name)))?;
    cm.data
        .and_then(|mut d| d.remove(&r.key))
        .map(Some)
        .ok_or_else(|| {
            Error::MissingReference(format!("ConfigMap {ns}/{} has no key {:?}", r.name, r.key))
        })
}

/// The three config files of the region, each resolved.
async fn resolve_files(ctx: &Context, ns: &str, region: &StackTachRegion) -> Result<ConfigFiles> {
    let c = &region.spec.config;
    Ok(ConfigFiles {
        event_definitions: resolve(ctx, ns, &c.event_definitions).await?,
        triggers: resolve(ctx, ns, &c.triggers).await?,
        pipelines: resolve(ctx, ns, &c.pipelines).await?,
    })
}

/// The region's config files when they resolve and parse (`ConfigValid=True`, with
/// the parsers' warnings); `None` when they do not: `ConfigValid`, `Ready` and
/// `Degraded` say why and a Warning Event is published once per new problem, while
/// the running configuration stays in place. Other errors (the API) are errors.
pub(super) async fn check(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
    draft: &mut Draft,
) -> Result<Option<ConfigFiles>> {
    let checked = match resolve_files(ctx, ns, region).await {
        Ok(files) => config_check::check(&files)
            .map(|warnings| (files, warnings))
            .map_err(Error::from),
        Err(e) => Err(e),
    };
    match checked {
        Ok((files, warnings)) => {
            let reason = if warnings.is_empty() {
                Reason::Parsed
            } else {
                Reason::ParsedWithWarnings
            };
            draft.set(ConditionUpdate::yes(
                types::CONFIG_VALID,
                reason,
                redact(&config_check::valid_message(&warnings)),
            ));
            Ok(Some(files))
        }
        Err(e @ (Error::InvalidConfig(_) | Error::MissingReference(_))) => {
            let reason = e.reason();
            let message = match &e {
                Error::InvalidConfig(p) => redact(&p.to_string()),
                _ => redact(&e.to_string()),
            };
            let already = draft.status.conditions.iter().any(|c| {
                c.type_ == types::CONFIG_VALID && c.status == "False" && c.message == message
            });
            draft.set(ConditionUpdate::no(
                types::CONFIG_VALID,
                reason,
                message.clone(),
            ));
            draft.set(ConditionUpdate::no(
                types::READY,
                reason,
                "the configuration is invalid; the running configuration stays in place",
            ));
            draft.set(ConditionUpdate::yes(
                types::DEGRADED,
                reason,
                message.clone(),
            ));
            if !already {
                publish(ctx, region, EventType::Warning, reason.as_str(), message).await;
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
