//! The StackTach.v3 engine.
//!
//! Data flows one way: a raw notification is turned into an [`event::Event`] by the
//! [`distiller`]; later steps (winchester, storage, pipelines) consume events. The
//! [`timex`] time-expression language is shared by trigger definitions and criteria.
//!
//! The pure parts here take values and return values: no I/O beyond reading
//! configuration files, no clock reads except where a caller asks for "now".

pub mod amqp;
pub mod backup;
pub mod distiller;
pub mod event;
pub mod notabene;
pub mod notigen;
pub mod observe;
pub mod sandbox;
pub mod shoebox;
pub mod store;
pub mod timex;
pub mod winchester;
pub mod yagi;

/// Makes ring the process's rustls crypto provider, as everywhere in the workspace.
/// reqwest is built without one (its default would bring aws-lc-rs, a C build), so a
/// process builds an HTTP client only after calling this; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
pub(crate) mod yaml;
