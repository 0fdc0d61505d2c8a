//! The managed database's generated Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::{
    database_host, database_name, deletes_database, metadata, Component, DATABASE_NAME, MYSQL_PORT,
};
use crate::crd::StackTachRegion;
use crate::Result;

/// The generated passwords of a managed database. The reconciler makes them once, when
/// the Secret does not exist, and never overwrites the Secret afterwards.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabasePasswords {
    /// The `stv3` user's password.
    pub user: String,
    /// MySQL's root password.
    pub root: String,
}

impl std::fmt::Debug for DatabasePasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabasePasswords(<redacted>)")
    }
}

/// `<region>-db` Secret: the managed database's credentials and the URL the
/// components read ([`super::ENV_DATABASE_URL`]).
pub fn database_secret(region: &StackTachRegion, passwords: &DatabasePasswords) -> Result<Secret> {
    let url = format!(
        "mysql://{DATABASE_NAME}:{}@{}:{MYSQL_PORT}/{DATABASE_NAME}",
        passwords.user,
        database_host(region)
    );
    let mut meta = metadata(region, database_name(region), Component::Database, None)?;
    if !deletes_database(region) {
        // Retain: the Secret outlives the region, as the data volume does, so that a
        // region re-created with the same name opens its data with the same passwords.
        meta.owner_references = Some(vec![]);
    }
    Ok(Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([
            ("username".to_string(), DATABASE_NAME.to_string()),
            ("password".to_string(), passwords.user.clone()),
            ("root-password".to_string(), passwords.root.clone()),
            ("url".to_string(), url),
        ])),
        ..Default::default()
    })
}
