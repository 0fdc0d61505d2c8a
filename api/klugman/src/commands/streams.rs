//! `klugman URL streams …`: `GET /vN/streams`, `/vN/streams/count`, `/vN/streams/{id}`.

use std::io::Write;

use crate::cli::StreamsArgs;
use crate::error::Error;
use crate::render;
use crate::request::{join_traits, parse_traits, path_segment, ApiRequest};

use super::Context;

/// The request the original sent for these options: `--from` as `older_than`, `--to`
/// as `younger_than`, `--name` as `name`, `--details` as `details=True`, `--traits` as
/// `distinguishing_traits`; `--count` and `--id` change the path (and `--id` sends
/// only `details`).
pub fn request(args: &StreamsArgs) -> Result<ApiRequest, Error> {
    let traits = match &args.traits {
        Some(list) => Some(join_traits(
            &parse_traits(list).map_err(Error::BadArgument)?,
        )),
        None => None,
    };
    let details = args.details.then_some("True");
    if args.count {
        return Ok(ApiRequest::new("streams/count")
            .param("older_than", args.from.as_deref())
            .param("younger_than", args.to.as_deref())
            .param("name", args.name.as_deref())
            .param("state", args.state.as_deref())
            .param("distinguishing_traits", traits.as_deref()));
    }
    if let Some(id) = args.stream_id.as_deref().filter(|id| !id.is_empty()) {
        return Ok(
            ApiRequest::new(format!("streams/{}", path_segment(id))).param("details", details)
        );
    }
    let limit = args.limit.map(|l| l.to_string());
    Ok(ApiRequest::new("streams")
        .param("older_than", args.from.as_deref())
        .param("younger_than", args.to.as_deref())
        .param("name", args.name.as_deref())
        .param("details", details)
        .param("state", args.state.as_deref())
        .param("distinguishing_traits", traits.as_deref())
        .param("mark", args.mark.as_deref())
        .param("limit", limit.as_deref()))
}

pub fn execute(ctx: &Context, args: &StreamsArgs, out: &mut dyn Write) -> Result<(), Error> {
    let req = request(args)?;
    let (value, raw) = ctx.get_json(ctx.version, &req, out)?;
    let layout = if args.count {
        render::count
    } else {
        render::streams
    };
    ctx.print(out, &value, &raw, layout)
}
