//! The API's routes, with their OpenAPI annotations. `/v1` and `/v2` serve the same
//! calls (quincy's v2 extended v1); `/v2` adds archives.

pub mod archives;
pub mod events;
pub mod streams;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The calls of every version, relative to the version prefix.
fn common() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(streams::list_streams))
        .routes(routes!(streams::count_streams))
        .routes(routes!(
            streams::get_stream,
            streams::delete_stream,
            streams::reset_stream,
            streams::post_stream
        ))
        .routes(routes!(events::list_events))
        .routes(routes!(events::count_events))
        .routes(routes!(events::get_event))
        .routes(routes!(events::event_types))
        .routes(routes!(events::event_type_traits))
}

pub fn v1() -> OpenApiRouter<AppState> {
    common()
}

pub fn v2() -> OpenApiRouter<AppState> {
    common()
        .routes(routes!(archives::list_archives))
        .routes(routes!(archives::get_archive))
}
