//! The index without the broker: matching level by level, copies per client, share groups.

use super::*;

const Q1: SubOptions = SubOptions {
    qos: QoS::AtLeastOnce,
    no_local: false,
    retain_as_published: false,
    retain_handling: RetainHandling::OnSubscribe,
    id: None,
};

fn clients(targets: &[Target]) -> Vec<&str> {
    let mut c: Vec<&str> = targets.iter().map(|t| &*t.client_id).collect();
    c.sort();
    c
}

#[test]
fn wildcards_match_level_by_level() {
    let mut idx = SubscriptionIndex::default();
    for (client, filter) in [
        ("a", "T/#"),
        ("b", "T/+"),
        ("c", "T/x/y"),
        ("d", "T/+/y"),
        ("e", "T"),
        ("f", "U/#"),
    ] {
        idx.insert("i", filter, None, client, Q1);
    }
    let all = |_: &str| true;
    assert_eq!(clients(&idx.route("i", "T/x/y", "", true, &all)), ["a", "c", "d"]);
    assert_eq!(clients(&idx.route("i", "T/x", "", true, &all)), ["a", "b"]);
    assert_eq!(
        clients(&idx.route("i", "T", "", true, &all)),
        ["a", "e"],
        "T/# matches T itself"
    );
    assert_eq!(
        clients(&idx.route("i", "T/", "", true, &all)),
        ["a", "b"],
        "an empty level is a level"
    );
    assert!(
        idx.route("j", "T/x", "", true, &all).is_empty(),
        "instances are separate"
    );
    assert_eq!(idx.wildcard_count("i", "T"), 3);
    assert_eq!(idx.len(), 6);
}

#[test]
fn first_level_wildcards_skip_dollar_topics() {
    let mut idx = SubscriptionIndex::default();
    idx.insert("i", "#", None, "a", Q1);
    idx.insert("i", "+/x", None, "b", Q1);
    idx.insert("i", "$SYS/x", None, "c", Q1);
    let all = |_: &str| true;
    assert_eq!(clients(&idx.route("i", "/x", "", true, &all)), ["a", "b"]);
    assert_eq!(clients(&idx.route("i", "$SYS/x", "", true, &all)), ["c"]);
}

#[test]
fn overlapping_filters_give_one_copy_with_every_identifier() {
    let mut idx = SubscriptionIndex::default();
    let with = |qos, id: u32, rap| SubOptions {
        qos,
        retain_as_published: rap,
        id: NonZeroU32::new(id),
        ..Q1
    };
    idx.insert("i", "T/#", None, "a", with(QoS::AtMostOnce, 1, false));
    idx.insert("i", "T/+", None, "a", with(QoS::ExactlyOnce, 2, true));
    idx.insert("i", "T/+", None, "b", with(QoS::AtLeastOnce, 0, false));
    let r = idx.route("i", "T/x", "", true, &|_| true);
    let a = r.iter().find(|t| &*t.client_id == "a").unwrap();
    assert_eq!((a.qos, a.retain_as_published), (QoS::ExactlyOnce, true));
    assert_eq!(a.sub_ids.iter().map(|i| i.get()).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(r.len(), 2);
}

#[test]
fn no_local_skips_the_publisher_only() {
    let mut idx = SubscriptionIndex::default();
    let nl = SubOptions { no_local: true, ..Q1 };
    idx.insert("i", "T/x", None, "a", nl);
    idx.insert("i", "T/x", None, "b", nl);
    assert_eq!(clients(&idx.route("i", "T/x", "a", true, &|_| true)), ["b"]);
}

#[test]
fn share_groups_round_robin_over_online_members_and_free_their_state() {
    let mut idx = SubscriptionIndex::default();
    idx.insert("i", "T/+", Some("g"), "a", Q1);
    idx.insert("i", "T/+", Some("g"), "b", Q1);
    idx.insert("i", "T/+", Some("h"), "c", Q1);
    let all = |_: &str| true;
    let first = idx.route("i", "T/x", "", true, &all);
    let second = idx.route("i", "T/x", "", true, &all);
    assert_eq!(first.len(), 2, "one per group");
    assert_ne!(clients(&first), clients(&second), "group g alternates");
    let only_b = |c: &str| c == "b";
    for _ in 0..3 {
        assert!(clients(&idx.route("i", "T/x", "", true, &only_b)).contains(&"b"));
    }
    assert!(idx.remove("i", "T/+", Some("g"), "a"));
    assert!(idx.remove("i", "T/+", Some("g"), "b"));
    assert!(idx.remove("i", "T/+", Some("h"), "c"));
    assert!(!idx.remove("i", "T/+", Some("h"), "c"));
    assert!(idx.instances.is_empty(), "an emptied instance leaves nothing behind");
    assert_eq!((idx.len(), idx.wildcard_count("i", "T")), (0, 0));
}

#[test]
fn replacing_a_subscription_keeps_one() {
    let mut idx = SubscriptionIndex::default();
    assert!(idx.insert("i", "T/x", None, "a", Q1));
    assert!(!idx.insert("i", "T/x", None, "a", SubOptions::qos(QoS::ExactlyOnce)));
    let r = idx.route("i", "T/x", "", true, &|_| true);
    assert_eq!((r.len(), r[0].qos), (1, QoS::ExactlyOnce));
    assert!(idx.remove("i", "T/x", None, "a"));
    assert_eq!(idx.len(), 0);
}
