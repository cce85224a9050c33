//! Flow patterns (section 6): Cloudmesh flow strings and the `std/flow` module.

use crate::support::Run;

#[test]
fn a_flow_string_builds_its_order_inside_a_subgraph() {
    let out = Run::new("flow_string_nested.rhai").output();
    out.assert_code(0);
    let ev = &out.events;
    assert!(ev.end_seq("a") < ev.start_seq("b"), "{}", ev.summary());
    assert!(ev.overlapped("a", "c"), "{}", ev.summary());
    assert!(ev.end_seq("b") < ev.start_seq("d") && ev.end_seq("c") < ev.start_seq("d"), "{}", ev.summary());
    assert!(ev.end_seq("d") < ev.start_seq("after_flow"), "the flow is one subgraph: {}", ev.summary());
    assert!(ev.started("flow"), "{}", ev.summary());
}

#[test]
fn a_flow_string_mistake_points_into_the_string() {
    let out = Run::new("flow_string_typo.rhai").output();
    out.assert_code(2);
    // A lone `|` was only "unexpected": the user meant `||`.
    assert!(out.stderr.contains("unexpected `|` (did you mean `||`?)"), "{}", out.stderr);
    assert!(out.stderr.contains("build; test |deploy\n") && out.stderr.contains("             ^"), "{}", out.stderr);
    assert!(!out.events.started("build"));
}

/// Tasks in the map but not in the string were silently dropped: they never ran and the run
/// succeeded.
#[test]
fn a_task_handed_to_flow_but_left_out_of_its_string_is_an_error() {
    let out = Run::new("flow_string_task_left_out.rhai").output();
    out.assert_code(2);
    assert!(out.stderr.contains("the flow string never names `lint`, `test`"), "{}", out.stderr);
    assert!(!out.events.started("build"), "{}", out.events.summary());
}

#[test]
fn std_flow_parallel_and_pipeline_compose() {
    let out = Run::new("std_flow_pipeline_parallel.rhai").output();
    out.assert_code(0);
    let ev = &out.events;
    assert!(ev.overlapped("fetch_a", "fetch_b"), "{}", ev.summary());
    assert!(ev.end_seq("fetch_a") < ev.start_seq("merge"), "{}", ev.summary());
    assert!(ev.end_seq("merge") < ev.start_seq("publish"), "{}", ev.summary());
}
