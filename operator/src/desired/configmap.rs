//! The ConfigMaps: the region's config files (`winchester.yaml` rendered, the event
//! definitions, triggers and pipelines as given) and each cell's `yagi.conf`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{
    config_name, metadata, yagi_name, Component, DEFAULTS_CONFIG_DIR, ENV_AMQP_PASSWORD,
    ENV_AMQP_USER, REGION_CONFIG_DIR,
};
use crate::config_check::{ConfigFiles, EVENT_DEFINITIONS_FILE, PIPELINES_FILE, TRIGGERS_FILE};
use crate::crd::{Cell, ExchangeType, StackTachRegion};
use crate::Result;

/// `winchester.yaml` for the region: the settings, the three files looked up in
/// [`REGION_CONFIG_DIR`] and then [`DEFAULTS_CONFIG_DIR`], and no database URL (it
/// comes from [`super::ENV_DATABASE_URL`]).
pub fn render_winchester_yaml(region: &StackTachRegion) -> String {
    let spec = &region.spec;
    let w = &spec.config.winchester;
    let p = &spec.pipeline_workers;
    let mut out = String::from(
        "# Rendered by stv3-operator; the database URL comes from $STV3_DATABASE_URL.\n",
    );
    // The region's files first, then the defaults baked into the image (worker/Dockerfile).
    out.push_str(&format!(
        "config_path:\n    - {REGION_CONFIG_DIR}\n    - {DEFAULTS_CONFIG_DIR}\n"
    ));
    out.push_str(&format!(
        "statistics_period: {}\n",
        w.statistics_period_seconds
    ));
    out.push_str(&format!("pipeline_worker_batch_size: {}\n", p.batch_size));
    out.push_str(&format!(
        "pipeline_worker_delay: {}\n",
        p.idle_delay_seconds
    ));
    out.push_str(&format!(
        "purge_completed_streams: {}\n",
        w.purge_completed_streams
    ));
    out.push_str(&format!("trim_events: {}\n", w.trim_events));
    out.push_str(&format!(
        "trim_events_age: {}\n",
        serde_json::to_string(&w.trim_events_age).expect("a string serializes")
    ));
    // Always named: a file the region gives is found in its ConfigMap, any other in the
    // image's defaults.
    for (key, file) in [
        ("distiller_config", EVENT_DEFINITIONS_FILE),
        ("trigger_definitions", TRIGGERS_FILE),
        ("pipeline_config", PIPELINES_FILE),
    ] {
        out.push_str(&format!("{key}: {file}\n"));
    }
    out.push_str(
        "pipeline_handlers:\n    logger: winchester.pipeline_handler:LoggingHandler\n    \
         usage: winchester.pipeline_handler:UsageHandler\n    \
         notabene: winchester.pipeline_handler:NotabeneHandler\n",
    );
    out
}

/// The data of the region's ConfigMap: `winchester.yaml` and the given files.
pub fn region_config_data(
    region: &StackTachRegion,
    files: &ConfigFiles,
) -> BTreeMap<String, String> {
    let mut data = BTreeMap::from([(
        "winchester.yaml".to_string(),
        render_winchester_yaml(region),
    )]);
    for (name, text) in [
        (EVENT_DEFINITIONS_FILE, &files.event_definitions),
        (TRIGGERS_FILE, &files.triggers),
        (PIPELINES_FILE, &files.pipelines),
    ] {
        if let Some(text) = text {
            data.insert(name.to_string(), text.clone());
        }
    }
    data
}

/// `<region>-config`: the region's config files, mounted by every component.
pub fn region_config_map(region: &StackTachRegion, files: &ConfigFiles) -> Result<ConfigMap> {
    Ok(ConfigMap {
        metadata: metadata(region, config_name(region), Component::Config, None)?,
        data: Some(region_config_data(region, files)),
        ..Default::default()
    })
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn exchange_type(t: ExchangeType) -> &'static str {
    match t {
        ExchangeType::Topic => "topic",
        ExchangeType::Direct => "direct",
        ExchangeType::Fanout => "fanout",
        ExchangeType::Headers => "headers",
    }
}

/// A cell's `yagi.conf`: the broker (without credentials), its queues and apps.
pub fn render_yagi_conf(cell: &Cell) -> String {
    let r = &cell.rabbitmq;
    let mut apps = vec!["winchester.yagi_handler.WinchesterHandler"];
    if cell.shoebox.is_some() {
        apps.push("yagi.handler.shoebox_handler.ShoeboxHandler");
    }
    let mut out = format!(
        "# Rendered by stv3-operator for cell {name}. The RabbitMQ user and password come\n\
         # from ${ENV_AMQP_USER} and ${ENV_AMQP_PASSWORD}.\n\
         [global]\nupdate_timer = 10\n\n\
         [rabbit_broker]\nhost = {host}\nport = {port}\nvhost = {vhost}\nssl = {ssl}\npoll_delay = 0.5\n{tls}\n\
         [consumers]\nqueues = {queues}\n\n\
         [winchester]\nconfig_file = {REGION_CONFIG_DIR}/winchester.yaml\n",
        name = cell.name,
        host = r.host,
        port = r.port,
        vhost = r.vhost,
        ssl = py_bool(r.tls),
        tls = crate::broker_tls::yagi_conf_lines(r),
        queues = cell
            .queues
            .iter()
            .map(|q| q.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    if let Some(s) = &cell.shoebox {
        out.push_str(&format!(
            "\n[shoebox]\nworking_directory = {p}/working\ndestination_folder = {p}/archive\n\
             filename_template = %Y%m%d-[[TIMESTAMP]]-stv3-[[CRC]].json\n\
             roll_manager = shoebox.roll_manager:WritingJSONRollManager\nroll_size_mb = {mb}\n",
            p = s.path,
            mb = s.roll_size_mb
        ));
    }
    for q in &cell.queues {
        out.push_str(&format!(
            "\n[consumer:{name}]\napps = {apps}\nexchange = {ex}\nexchange_type = {et}\n\
             routing_key = {rk}\ndurable = {d}\nmax_messages = {mm}\n",
            name = q.name,
            apps = apps.join(", "),
            ex = q.exchange,
            et = exchange_type(q.exchange_type),
            rk = q.routing_key,
            d = py_bool(q.durable),
            mm = q.max_messages,
        ));
    }
    out
}

/// The data of a cell's ConfigMap.
pub fn cell_config_data(cell: &Cell) -> BTreeMap<String, String> {
    BTreeMap::from([("yagi.conf".to_string(), render_yagi_conf(cell))])
}

/// `<region>-yagi-<cell>` ConfigMap: the cell's `yagi.conf`.
pub fn cell_config_map(region: &StackTachRegion, cell: &Cell) -> Result<ConfigMap> {
    Ok(ConfigMap {
        metadata: metadata(
            region,
            yagi_name(region, &cell.name),
            Component::Yagi,
            Some(&cell.name),
        )?,
        data: Some(cell_config_data(cell)),
        ..Default::default()
    })
}
