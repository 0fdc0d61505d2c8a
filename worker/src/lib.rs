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
pub(crate) mod yaml;
