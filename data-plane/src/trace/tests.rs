use common::sync::TraceKind;

use super::*;

const INST: &str = "mqtt-tracetest0001";

fn query(msg_id: Option<MsgId>, client_id: Option<&str>, kind: Option<TraceKind>, limit: u32) -> TraceQuery {
    TraceQuery {
        instance_id: INST.into(),
        msg_id: msg_id.map(|m| m.to_string()),
        client_id: client_id.map(String::from),
        kind,
        begin_ms: common::time::now_ms() - 60_000,
        end_ms: common::time::now_ms() + 60_000,
        limit,
        newest_first: false,
    }
}

/// Waits until the writer wrote `n` matching records (it writes every 100 ms).
fn wait_for(tracer: &Tracer, q: &TraceQuery, n: usize) -> Vec<TraceRecord> {
    for _ in 0..100 {
        let (found, _) = tracer.query(q).unwrap();
        if found.len() >= n {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("fewer than {n} records");
}

#[test]
fn records_are_found_by_message_client_and_kind_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (MsgId::new(), MsgId::new());
    {
        let tracer = Tracer::start(dir.path(), 1 << 30).unwrap();
        tracer.record(INST, a, &"pub-1".into(), TraceAction::PubMqtt);
        tracer.record(INST, a, &"sub-1".into(), TraceAction::Sub);
        tracer.record(INST, a, &"sub-2".into(), TraceAction::PushOffline);
        tracer.record(INST, b, &"".into(), TraceAction::PubBackend);
        tracer.record("mqtt-othertrace01", a, &"sub-1".into(), TraceAction::Sub);
        let all_of_a = wait_for(&tracer, &query(Some(a), None, None, 100), 3);
        assert_eq!(
            all_of_a
                .iter()
                .map(|r| (r.client_id.as_str(), r.action))
                .collect::<Vec<_>>(),
            [
                ("pub-1", TraceAction::PubMqtt),
                ("sub-1", TraceAction::Sub),
                ("sub-2", TraceAction::PushOffline)
            ]
        );
        assert_eq!(all_of_a[0].msg_id, a.to_string());
        let (deliveries, _) = tracer
            .query(&query(Some(a), None, Some(TraceKind::Delivery), 100))
            .unwrap();
        assert_eq!(deliveries.len(), 2);
        let (of_client, _) = tracer.query(&query(None, Some("sub-1"), None, 100)).unwrap();
        assert_eq!(of_client.len(), 1, "the other instance's record is not this instance's");
        let (first, truncated) = tracer.query(&query(Some(a), None, None, 2)).unwrap();
        assert_eq!((first.len(), truncated), (2, true));
        let newest = TraceQuery {
            newest_first: true,
            ..query(Some(a), None, None, 1)
        };
        let (last, _) = tracer.query(&newest).unwrap();
        assert_eq!(last[0].client_id, "sub-2");
    }
    // The writer thread ends with its tracer; what it wrote is on disk.
    std::thread::sleep(Duration::from_millis(300));
    let tracer = Tracer::start(dir.path(), 1 << 30).unwrap();
    let (again, _) = tracer.query(&query(Some(b), None, None, 100)).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].action, TraceAction::PubBackend);
}

#[test]
fn hours_past_the_retention_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path(), 1 << 30).unwrap();
    let now = common::time::now_ms();
    let mut old = block::Builder::default();
    let then = now - (RETENTION_HOURS + 1) * HOUR_MS;
    old.push(then, INST, MsgId::new(), "c", TraceAction::Sub);
    store.write(old.take().unwrap(), 1).unwrap();
    assert_eq!(store.hours.lock().unwrap().len(), 1);
    store.expire(now).unwrap();
    assert!(store.hours.lock().unwrap().is_empty());
}
