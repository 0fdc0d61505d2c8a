//! Our layouts against what the original klugman printed for the same JSON
//! (`testdata/original/`, generated from the original's code).

use serde_json::Value;

use super::*;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

macro_rules! fixture {
    ($name:literal) => {
        (
            json(include_str!(concat!(
                "../../testdata/original/",
                $name,
                ".json"
            ))),
            include_str!(concat!("../../testdata/original/", $name, ".txt")),
        )
    };
}

#[test]
fn streams_list_matches_original() {
    let (input, expected) = fixture!("streams_list");
    assert_eq!(streams(&input), expected);
}

#[test]
fn stream_details_nest_events_like_original() {
    let (input, expected) = fixture!("stream_details");
    assert_eq!(streams(&input), expected);
}

#[test]
fn events_list_matches_original() {
    let (input, expected) = fixture!("events_list");
    assert_eq!(events(&input), expected);
}

#[test]
fn single_event_object_matches_original() {
    let (input, expected) = fixture!("event_single");
    assert_eq!(events(&input), expected);
}

#[test]
fn counts_match_original() {
    let (input, expected) = fixture!("count");
    assert_eq!(count(&input), expected);
    let (input, expected) = fixture!("count_zero");
    assert_eq!(count(&input), expected);
    // Our server may answer a count with an object rather than a list of one.
    assert_eq!(count(&json(r#"{"count": 44216}"#)), fixture!("count").1);
}

#[test]
fn empty_lists_print_nothing() {
    let (input, expected) = fixture!("empty");
    assert_eq!(expected, "");
    assert_eq!(events(&input), "");
    assert_eq!(streams(&input), "");
    assert_eq!(archives(&input), "");
}

#[test]
fn missing_stream_fields_print_none() {
    let text = streams(&json(r#"[{"id": 2, "state": "completed", "name": "t"}]"#));
    assert_eq!(
        text,
        "+---------+------------------+-----------+\n\
         | Section |     Property     |   Value   |\n\
         +---------+------------------+-----------+\n\
         |  Stream |        id        |     2     |\n\
         |  Stream |      state       | completed |\n\
         |  Stream |       name       |     t     |\n\
         |  Stream |   first_event    |    None   |\n\
         |  Stream |    last_event    |    None   |\n\
         |  Stream |  fire_timestamp  |    None   |\n\
         |  Stream | expire_timestamp |    None   |\n\
         +---------+------------------+-----------+\n"
    );
}

#[test]
fn archives_show_known_fields_first() {
    let text = archives(&json(
        r#"[{"size": 1024, "id": "a1", "zeta": "z", "modified": {"__type__": "datetime", "datetime": "2015-04-22T21:46:04"}, "name": "events_2015_04_22.dat"}]"#,
    ));
    assert_eq!(
        text,
        "+----------+-----------------------+\n\
         | Property |         Value         |\n\
         +----------+-----------------------+\n\
         |    id    |           a1          |\n\
         |   name   | events_2015_04_22.dat |\n\
         |   size   |          1024         |\n\
         | modified |  2015-04-22 21:46:04  |\n\
         |   zeta   |           z           |\n\
         +----------+-----------------------+\n"
    );
}
