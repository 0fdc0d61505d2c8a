//! `klugman URL events …`: `GET /vN/events`, `/vN/events/count`, `/vN/events/{message_id}`.

use std::io::Write;

use crate::cli::EventsArgs;
use crate::error::Error;
use crate::render;
use crate::request::{join_traits, parse_traits, path_segment, ApiRequest};

use super::Context;

/// The request the original sent for these options: `--from` as `from_datetime`,
/// `--to` as `to_datetime`, `--name` as `event_name`, `--traits` as `traits`;
/// `--count` and `--msg_id` change the path (`--msg_id` sends no parameters).
pub fn request(args: &EventsArgs) -> Result<ApiRequest, Error> {
    let traits = match &args.traits {
        Some(list) => Some(join_traits(
            &parse_traits(list).map_err(Error::BadArgument)?,
        )),
        None => None,
    };
    if let Some(id) = args.msg_id.as_deref().filter(|id| !id.is_empty()) {
        return Ok(ApiRequest::new(format!("events/{}", path_segment(id))));
    }
    let path = if args.count { "events/count" } else { "events" };
    let mut req = ApiRequest::new(path)
        .param("from_datetime", args.from.as_deref())
        .param("to_datetime", args.to.as_deref())
        .param("event_name", args.name.as_deref())
        .param("traits", traits.as_deref());
    if !args.count {
        let limit = args.limit.map(|l| l.to_string());
        req = req
            .param("mark", args.mark.as_deref())
            .param("limit", limit.as_deref());
    }
    Ok(req)
}

pub fn execute(ctx: &Context, args: &EventsArgs, out: &mut dyn Write) -> Result<(), Error> {
    let req = request(args)?;
    let (value, raw) = ctx.get_json(ctx.version, &req, out)?;
    let layout = if args.count {
        render::count
    } else {
        render::events
    };
    ctx.print(out, &value, &raw, layout)
}
