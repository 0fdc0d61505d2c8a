use super::*;

fn settings(yaml: &str) -> Result<(WinchesterConfig, Vec<ConfigError>), ConfigErrors> {
    parse_settings(yaml, "w.yaml")
}

#[test]
fn defaults_match_the_original() {
    let (cfg, warnings) = settings("database: {url: 'sqlite://x.db'}\n").unwrap();
    assert!(warnings.is_empty());
    assert_eq!(cfg.config_path, vec!["."]);
    assert_eq!(cfg.pipeline_worker_batch_size, 1000);
    assert_eq!(cfg.pipeline_worker_delay, Duration::from_secs(10));
    assert_eq!(cfg.statistics_period, Duration::from_secs(10));
    assert!(cfg.purge_completed_streams);
    assert!(!cfg.trim_events);
    assert_eq!(cfg.trim_events_age.source(), "$timestamp - 14d");
    assert_eq!(cfg.trim_events_batch_size, 100);
    assert!(!cfg.catch_all_notifications);
    assert_eq!(cfg.pipeline_worker_lease, Duration::from_secs(300));
    assert_eq!(cfg.ingest_batch_size, 100);
    assert_eq!(cfg.distiller_config, None);
    assert_eq!(cfg, WinchesterConfig::with_database_url("sqlite://x.db"));
}

#[test]
fn settings_are_read() {
    let yaml = "config_path: [a, /b]\ndatabase:\n  url: mysql://u:secret@h/db\ndistiller_config: d.yaml\n\
                trigger_definitions: t.yaml\npipeline_config: p.yaml\npipeline_handlers: {logger: builtin:logger}\n\
                pipeline_worker_batch_size: 5\npipeline_worker_delay: 0.5\nstatistics_period: 2\n\
                purge_completed_streams: false\ntrim_events: yes\ntrim_events_age: $timestamp - 1d\n\
                trim_events_batch_size: 7\ncatch_all_notifications: true\npipeline_worker_lease: 60\ningest_batch_size: 9\n";
    let (cfg, warnings) = settings(yaml).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(cfg.config_path, vec!["a", "/b"]);
    assert_eq!(cfg.database.url, "mysql://u:secret@h/db");
    assert!(
        !format!("{cfg:?}").contains("secret"),
        "Debug redacts the password"
    );
    assert_eq!(cfg.pipeline_handlers["logger"], "builtin:logger");
    assert_eq!(cfg.pipeline_worker_delay, Duration::from_millis(500));
    assert!(!cfg.purge_completed_streams && cfg.trim_events && cfg.catch_all_notifications);
    assert_eq!(cfg.trim_events_batch_size, 7);
    assert_eq!(cfg.pipeline_worker_lease, Duration::from_secs(60));
    assert_eq!(cfg.ingest_batch_size, 9);
}

#[test]
fn ignored_and_unknown_settings_warn() {
    let yaml = "database: {url: 'sqlite://x.db', echo_sql: true}\nlogging_config: logging.conf\nlog_level: debug\n\
                time_sync_endpoint: http://127.0.0.1:8001\nmystery: 1\ndistiller_trait_plugins: {}\n";
    let (cfg, warnings) = settings(yaml).unwrap();
    assert_eq!(
        cfg.time_sync_endpoint.as_deref(),
        Some("http://127.0.0.1:8001")
    );
    let w: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 5, "{w:?}");
    assert!(
        w.iter()
            .any(|l| l.starts_with("w.yaml:5: mystery: unknown setting ignored")),
        "{w:?}"
    );
}

#[test]
fn every_bad_setting_is_reported() {
    let yaml = "database: {url: 'postgres://u:pw@h/db'}\npipeline_worker_batch_size: many\n\
                trim_events_age: 'nope +'\npurge_completed_streams: 'false'\n\
                distiller_trait_plugins: {test: some.module:Plugin}\nstatistics_period: -1\n";
    let err = settings(yaml).unwrap_err();
    let s = err.to_string();
    assert_eq!(err.len(), 6, "{s}");
    assert!(
        s.contains("w.yaml:1: database/url: unsupported database URL 'postgres://u:***@h/db'"),
        "{s}"
    );
    assert!(!s.contains(":pw@"), "{s}");
    assert!(
        s.contains("w.yaml:2: pipeline_worker_batch_size: expected a positive integer"),
        "{s}"
    );
    assert!(
        s.contains("w.yaml:3: trim_events_age: invalid timex expression 'nope +'"),
        "{s}"
    );
    assert!(
        s.contains("w.yaml:5: distiller_trait_plugins/test: Python trait plugin"),
        "{s}"
    );
    let err = settings("pipeline_config: p.yaml\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("database/url: required setting is missing"),
        "{err}"
    );
    let err = settings("a: [\n").unwrap_err();
    assert!(err.errors[0].line.is_some(), "{err}");
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stv3-config-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn files_are_found_along_config_path() {
    let dir = temp_dir("resolve");
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::write(dir.join("conf/a.yaml"), "").unwrap();
    std::fs::write(dir.join("a.yaml"), "").unwrap();
    std::fs::write(dir.join("b.yaml"), "").unwrap();
    let paths = vec!["missing".to_string(), "conf".to_string()];
    assert_eq!(
        resolve_file("a.yaml", &dir, &paths).unwrap(),
        dir.join("conf").join("a.yaml")
    );
    assert_eq!(
        resolve_file("b.yaml", &dir, &paths).unwrap(),
        dir.join("b.yaml")
    );
    let abs = dir.join("b.yaml");
    assert_eq!(
        resolve_file(abs.to_str().unwrap(), Path::new("/nowhere"), &paths).unwrap(),
        abs
    );
    let err = resolve_file("c.yaml", &dir, &paths).unwrap_err();
    assert!(err.contains("cannot find 'c.yaml'"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sandbox_configs_load() {
    for dir in [
        concat!(env!("CARGO_MANIFEST_DIR"), "/../etc"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/spec/configs"),
    ] {
        let path = Path::new(dir).join("winchester.yaml");
        if !path.exists() {
            continue;
        }
        let loaded = load_config(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(loaded.triggers.len(), 1);
        assert_eq!(loaded.pipelines.len(), 2);
        assert!(loaded.distiller.as_ref().is_some_and(|d| !d.is_empty()));
        assert_eq!(loaded.handlers["usage"], HandlerKind::Usage);
        assert_eq!(loaded.handlers.len(), 3);
    }
}

#[test]
fn whole_set_problems_are_all_reported() {
    let dir = temp_dir("set");
    std::fs::write(
        dir.join("winchester.yaml"),
        "database: {url: 'sqlite::memory:'}\ndistiller_config: missing.yaml\ntrigger_definitions: t.yaml\n\
         pipeline_config: p.yaml\npipeline_handlers:\n  logger: winchester.pipeline_handler:LoggingHandler\n  \
         atom: winchester.pipeline_handler:AtomPubHandler\n",
    )
    .unwrap();
    std::fs::write(dir.join("p.yaml"), "p1: [logger, usage]\n").unwrap();
    std::fs::write(
        dir.join("t.yaml"),
        "- name: a\n  expiration: $last + 1d\n  fire_pipeline: p2\n  fire_criteria: []\n  match_criteria: [{}]\n",
    )
    .unwrap();
    let err = load_config(&dir.join("winchester.yaml")).unwrap_err();
    let s = err.to_string();
    assert!(s.contains("pipeline_handlers/atom: unknown handler class 'winchester.pipeline_handler:AtomPubHandler'"), "{s}");
    assert!(
        s.contains("distiller_config: cannot find 'missing.yaml'"),
        "{s}"
    );
    assert!(
        s.contains("p.yaml:1: pipeline 'p1': unknown handler 'usage'"),
        "{s}"
    );
    assert!(
        s.contains("t.yaml:3: trigger 'a': fire_pipeline 'p2' is not defined"),
        "{s}"
    );
    assert_eq!(err.len(), 4, "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_database_url_from_the_environment_replaces_the_files() {
    let yaml = "config_path: /etc/stv3\n";
    // Without one, the file must name a database.
    assert!(parse_settings(yaml, "w.yaml").is_err());
    let (cfg, _) = parse_settings_with_url(yaml, "w.yaml", Some("mysql://u:pw@db/stv3")).unwrap();
    assert_eq!(cfg.database.url, "mysql://u:pw@db/stv3");
    // It wins over the file's URL too.
    let yaml = "database:\n    url: sqlite://local.db\n";
    let (cfg, _) = parse_settings_with_url(yaml, "w.yaml", Some("sqlite::memory:")).unwrap();
    assert_eq!(cfg.database.url, "sqlite::memory:");
    // A bad one is named by its variable, with the password hidden.
    let err = parse_settings_with_url(yaml, "w.yaml", Some("postgres://u:hunter2@h/db"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("$STV3_DATABASE_URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
