//! Client unit tests against a scripted fake server (byte vectors only).

use crate::json::Framer;
use crate::*;
use serde_json::{json, Value};

const B1: &str = "11111111-1111-1111-1111-111111111111";
const B2: &str = "22222222-2222-2222-2222-222222222222";

fn schema() -> Value {
    json!({"name": "Open_vSwitch", "version": "8.3.0", "tables": {
        "Bridge": {"columns": {
            "name": {"type": "string"},
            "ports": {"type": {"key": {"type": "uuid", "refTable": "Port"}, "min": 0, "max": "unlimited"}},
            "other_config": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}}
        }},
        "Port": {"columns": {"name": {"type": "string"}}}
    }})
}

fn sent(c: &mut Client) -> Vec<Value> {
    Framer::default().feed(&c.take_output()).unwrap()
}

fn bytes(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

/// Connects and answers get_schema and monitor_cond with one bridge.
fn connected() -> Client {
    let mut c = Client::new(
        "Open_vSwitch",
        &[
            ("Bridge", &["name", "ports", "other_config", "bogus"]),
            ("Nope", &[]),
        ],
    );
    let first = Framer::default().feed(&c.on_connected()).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["method"], "get_schema");
    assert_eq!(first[0]["params"], json!(["Open_vSwitch"]));
    let ev = c
        .receive(&bytes(
            json!({"id": first[0]["id"], "result": schema(), "error": null}),
        ))
        .unwrap();
    assert!(ev.is_empty());
    let mon = sent(&mut c);
    assert_eq!(mon[0]["method"], "monitor_cond");
    assert_eq!(
        mon[0]["params"][2],
        json!({"Bridge": [{"columns": ["name", "other_config", "ports"]}]}),
        "unknown table and column dropped"
    );
    let ev = c
        .receive(&bytes(json!({"id": mon[0]["id"], "error": null,
            "result": {"Bridge": {B1: {"initial": {"name": "br0"}}}}})))
        .unwrap();
    assert!(
        matches!(&ev[..], [Event::RowInserted { table, .. }, Event::Synced] if table == "Bridge")
    );
    assert!(c.is_synced());
    assert_eq!(c.monitor_version(), 2);
    c
}

/// The monitor id of the first monitor of a client (format "xvswitch-<db>-<n>").
const MONID: &str = "xvswitch-Open_vSwitch-1";

#[test]
fn handshake_and_update2() {
    let mut c = connected();
    let id = MONID;
    let ev = c
        .receive(&bytes(
            json!({"method": "update2", "id": null, "params": [id, {
            "Bridge": {
                B1: {"modify": {"other_config": ["map", [["a", "1"]]]}},
                B2: {"insert": {"name": "br1"}}
            }}]}),
        ))
        .unwrap();
    assert_eq!(ev.len(), 2, "{ev:?}");
    let (_, r) = c.db().find("Bridge", "name", "br0").unwrap();
    assert_eq!(
        r.map_get("other_config", "a").and_then(Atom::as_str),
        Some("1")
    );
    assert!(c.db().find("Bridge", "name", "br1").is_some());
    // An update for another monitor id is ignored.
    let ev = c
        .receive(&bytes(
            json!({"method": "update2", "id": null, "params": ["other", {
            "Bridge": {B2: {"delete": null}}}]}),
        ))
        .unwrap();
    assert!(ev.is_empty());
    assert_eq!(c.db().len(), 2);
}

#[test]
fn whole_session_split_at_every_byte() {
    // Server side of a session, as one byte string.
    let mut server = Vec::new();
    server.extend(bytes(json!({"id": 1, "result": schema(), "error": null})));
    server.extend(bytes(json!({"id": 2, "error": null,
        "result": {"Bridge": {B1: {"initial": {"name": "br{0}\"", "ports": ["set", []]}}}}})));
    server.extend(bytes(
        json!({"method": "echo", "params": ["x"], "id": "echo"}),
    ));
    server.extend(bytes(
        json!({"method": "update2", "id": null, "params": ["xvswitch-Open_vSwitch-1",
        {"Bridge": {B1: {"modify": {"name": "br]["}}}}]}),
    ));
    for cut in 0..=server.len() {
        let mut c = Client::new("Open_vSwitch", &[("Bridge", &[])]);
        c.on_connected();
        let mut ev = c.receive(&server[..cut]).unwrap();
        ev.extend(c.receive(&server[cut..]).unwrap());
        assert_eq!(ev.len(), 3, "cut {cut}: {ev:?}");
        assert!(matches!(ev[2], Event::RowModified { .. }));
        let out = Framer::default().feed(&c.take_output()).unwrap();
        assert_eq!(
            out.last().unwrap(),
            &json!({"id": "echo", "result": ["x"], "error": null})
        );
        assert_eq!(
            c.db()
                .find("Bridge", "name", "br][")
                .map(|(u, _)| u.to_string()),
            Some(B1.to_string())
        );
        assert_eq!(c.echoes_answered(), 1);
    }
}

#[test]
fn echo_request_answered_and_unknown_request_refused() {
    let mut c = connected();
    c.receive(br#"{"method":"echo","params":[],"id":"echo"}{"method":"frob","params":[],"id":9}"#)
        .unwrap();
    let out = sent(&mut c);
    assert_eq!(out[0], json!({"id": "echo", "result": [], "error": null}));
    assert_eq!(out[1]["error"], json!("unknown method"));
    assert_eq!(out[1]["id"], json!(9));
    // Our own echo: reply swallowed.
    let id = c.echo().unwrap();
    assert_eq!(sent(&mut c)[0]["method"], "echo");
    let ev = c
        .receive(&bytes(json!({"id": id.0, "result": [], "error": null})))
        .unwrap();
    assert!(ev.is_empty());
}

#[test]
fn fallback_to_plain_monitor() {
    let mut c = Client::new("Open_vSwitch", &[("Bridge", &[])]);
    c.on_connected();
    c.receive(&bytes(json!({"id": 1, "result": schema(), "error": null})))
        .unwrap();
    let mon = sent(&mut c);
    assert_eq!(mon[0]["method"], "monitor_cond");
    c.receive(&bytes(
        json!({"id": mon[0]["id"], "result": null, "error": "unknown method"}),
    ))
    .unwrap();
    let mon = sent(&mut c);
    assert_eq!(mon[0]["method"], "monitor");
    assert!(mon[0]["params"][2]["Bridge"]["columns"].is_array());
    let monid = mon[0]["params"][1].clone();
    let ev = c
        .receive(&bytes(json!({"id": mon[0]["id"], "error": null,
            "result": {"Bridge": {B1: {"new": {"name": "br0"}}}}})))
        .unwrap();
    assert!(matches!(
        &ev[..],
        [Event::RowInserted { .. }, Event::Synced]
    ));
    assert_eq!(c.monitor_version(), 1);
    let ev = c
        .receive(&bytes(
            json!({"method": "update", "id": null, "params": [monid,
            {"Bridge": {B1: {"old": {"name": "br0"}, "new": {"name": "br9"}}}}]}),
        ))
        .unwrap();
    assert!(matches!(&ev[..], [Event::RowModified { columns, .. }] if columns == &["name"]));
    assert!(c.db().find("Bridge", "name", "br9").is_some());
}

#[test]
fn transactions() {
    let mut c = Client::new("Open_vSwitch", &[]);
    let id = c.transact(vec![ops::comment("x")]);
    assert_eq!(
        c.take_events(),
        vec![Event::TransactDone {
            id,
            result: Err(Error::NotConnected)
        }]
    );
    let mut c = connected();
    let id = c.transact(vec![ops::update(
        "Bridge",
        vec![ops::eq("name", json!("br0"))],
        json!({"name": "br1"}),
    )]);
    let req = sent(&mut c);
    assert_eq!(req[0]["method"], "transact");
    assert_eq!(req[0]["params"][0], "Open_vSwitch");
    assert_eq!(req[0]["params"][1]["op"], "update");
    let ev = c
        .receive(&bytes(
            json!({"id": id.0, "error": null, "result": [{"count": 1}]}),
        ))
        .unwrap();
    assert_eq!(
        ev,
        vec![Event::TransactDone {
            id,
            result: Ok(vec![json!({"count": 1})])
        }]
    );

    let id = c.transact(vec![
        ops::comment("a"),
        ops::insert("Bridge", json!({}), None),
    ]);
    let ev = c
        .receive(&bytes(json!({"id": id.0, "error": null, "result": [{}, {"error": "constraint violation", "details": "no name"}]})))
        .unwrap();
    match &ev[..] {
        [Event::TransactDone {
            result: Err(e @ Error::TransactFailed { index: 1, .. }),
            ..
        }] => {
            assert!(e.to_string().contains("constraint violation (no name)"))
        }
        other => panic!("{other:?}"),
    }
    let id = c.transact(vec![]);
    let ev = c
        .receive(&bytes(
            json!({"id": id.0, "result": null, "error": {"error": "unknown database"}}),
        ))
        .unwrap();
    assert!(matches!(
        &ev[..],
        [Event::TransactDone {
            result: Err(Error::Rpc { .. }),
            ..
        }]
    ));
    // Outstanding at disconnect.
    let id = c.transact(vec![]);
    c.on_disconnected();
    assert_eq!(
        c.take_events(),
        vec![Event::TransactDone {
            id,
            result: Err(Error::Disconnected)
        }]
    );
}

#[test]
fn locks() {
    let mut c = connected();
    c.lock("ovs_vswitchd");
    let req = sent(&mut c);
    assert_eq!(req[0]["method"], "lock");
    assert_eq!(req[0]["params"], json!(["ovs_vswitchd"]));
    let ev = c
        .receive(&bytes(
            json!({"id": req[0]["id"], "result": {"locked": false}, "error": null}),
        ))
        .unwrap();
    assert!(ev.is_empty());
    assert!(!c.has_lock());
    let ev = c
        .receive(br#"{"method":"locked","params":["ovs_vswitchd"],"id":null}"#)
        .unwrap();
    assert_eq!(
        ev,
        vec![Event::LockAcquired {
            name: "ovs_vswitchd".into()
        }]
    );
    let ev = c
        .receive(br#"{"method":"stolen","params":["ovs_vswitchd"],"id":null}"#)
        .unwrap();
    assert_eq!(
        ev,
        vec![Event::LockLost {
            name: "ovs_vswitchd".into()
        }]
    );
    c.receive(br#"{"method":"locked","params":["ovs_vswitchd"],"id":null}"#)
        .unwrap();
    c.on_disconnected();
    assert_eq!(
        c.take_events(),
        vec![Event::LockLost {
            name: "ovs_vswitchd".into()
        }]
    );
    // Reconnection asks for the lock again.
    let out = Framer::default().feed(&c.on_connected()).unwrap();
    assert_eq!(out[1]["method"], "lock");
    let ev = c
        .receive(&bytes(
            json!({"id": out[1]["id"], "result": {"locked": true}, "error": null}),
        ))
        .unwrap();
    assert_eq!(
        ev,
        vec![Event::LockAcquired {
            name: "ovs_vswitchd".into()
        }]
    );
    c.unlock("ovs_vswitchd");
    assert_eq!(sent(&mut c)[0]["method"], "unlock");
    assert_eq!(
        c.take_events(),
        vec![Event::LockLost {
            name: "ovs_vswitchd".into()
        }]
    );
}

#[test]
fn reconnect_resyncs_replica() {
    let mut c = connected();
    c.receive(&bytes(
        json!({"method": "update2", "id": null, "params": ["xvswitch-Open_vSwitch-1",
        {"Bridge": {B2: {"insert": {"name": "br1"}}}}]}),
    ))
    .unwrap();
    c.on_disconnected();
    assert_eq!(c.phase(), Phase::Disconnected);
    assert_eq!(c.db().len(), 2, "replica kept while disconnected");
    let out = Framer::default().feed(&c.on_connected()).unwrap();
    c.receive(&bytes(
        json!({"id": out[0]["id"], "result": schema(), "error": null}),
    ))
    .unwrap();
    let mon = sent(&mut c);
    let b3 = "33333333-3333-3333-3333-333333333333";
    let ev = c
        .receive(&bytes(
            json!({"id": mon[0]["id"], "error": null, "result": {"Bridge": {
            B2: {"initial": {"name": "br1"}},
            b3: {"initial": {"name": "br3"}}}}}),
        ))
        .unwrap();
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert!(matches!(&ev[0], Event::RowDeleted { old, .. } if old.get_str("name") == Some("br0")));
    assert!(matches!(&ev[1], Event::RowInserted { uuid, .. } if uuid.to_string() == b3));
    assert_eq!(ev[2], Event::Synced);
    // Updates now carry the new monitor id.
    let ev = c
        .receive(&bytes(
            json!({"method": "update2", "id": null, "params": [mon[0]["params"][1],
            {"Bridge": {b3: {"delete": null}}}]}),
        ))
        .unwrap();
    assert!(matches!(&ev[..], [Event::RowDeleted { .. }]));
}

#[test]
fn malformed_input() {
    let mut c = connected();
    // Not JSON-RPC, bad params, wrong types: reported, no panic, session goes on.
    let ev = c
        .receive(br#"[1]{"foo":1}{"method":"update2","params":[1],"id":null}{"method":"update2","params":"x","id":null}{"id":"zzz","result":1}{"method":"update2","id":null,"params":["xvswitch-Open_vSwitch-1",{"Bridge":{"11111111-1111-1111-1111-111111111111":{"modify":{"name":7,"ports":["set",[["uuid","bad"]]]}}}}]}"#)
        .unwrap_err();
    // `[1]` at top level is a framing error: the stream is unusable.
    assert!(matches!(ev, Error::BadFraming { .. }));
    let mut c = connected();
    let ev = c
        .receive(br#"{"foo":1}{"method":"update2","params":[1],"id":null}{"method":"update2","params":"x","id":null}{"id":"zzz","result":1}{"method":"update2","id":null,"params":["xvswitch-Open_vSwitch-1",{"Bridge":{"11111111-1111-1111-1111-111111111111":{"modify":{"name":7,"ports":["set",[["uuid","bad"]]]}}}}]}"#)
        .unwrap();
    assert_eq!(
        ev.iter().filter(|e| matches!(e, Event::Error(_))).count(),
        5,
        "{ev:?}"
    );
    assert_eq!(
        c.db()
            .find("Bridge", "name", "br0")
            .map(|(u, _)| u.to_string()),
        Some(B1.into())
    );
    // Events decoded before a framing error are kept.
    let ev = c
        .receive(br#"{"method":"update2","id":null,"params":["xvswitch-Open_vSwitch-1",{"Bridge":{"11111111-1111-1111-1111-111111111111":{"delete":null}}}]} garbage"#);
    assert!(ev.is_err());
    assert!(matches!(&c.take_events()[..], [Event::RowDeleted { .. }]));
    // Bad schema.
    let mut c = Client::new("Open_vSwitch", &[]);
    c.on_connected();
    let ev = c
        .receive(br#"{"id":1,"result":{"tables":5},"error":null}"#)
        .unwrap();
    assert!(matches!(&ev[..], [Event::Error(Error::BadSchema(_))]));
}

#[test]
fn backoff() {
    use std::time::Duration;
    let mut b = Backoff::default();
    let d: Vec<u64> = (0..6).map(|_| b.next_delay().as_secs()).collect();
    assert_eq!(d, vec![1, 2, 4, 8, 8, 8]);
    b.reset();
    assert_eq!(b.next_delay(), Duration::from_secs(1));
}
