//! Conformance: ordered leaf pages, in every order and status selection,
//! against a full sort in memory.

use super::*;

/// Every order pages by cursor (and offset) to exactly what sorting the
/// whole CA in memory gives, for every set of admitted statuses.
pub(super) fn ordered_leaf_pages_match_a_full_sort(h: &dyn Harness) {
    use crate::store::{LeafCursor, LeafOrder, LeafPage, LeafStatuses, SortKey};
    let now = 1_000;
    let s = h.store();
    let mut tx = s.begin(TxMode::Write).unwrap();
    tx.insert_ca(&ca("i", "Issuing", None), None).unwrap();
    tx.insert_ca(&ca("j", "Other", None), None).unwrap();
    tx.insert_leaf(&leaf("other", "j", "01", 5_000)).unwrap();
    let subjects = ["CN=b", "CN=A", "CN=a", "CN=B", "CN=c", "CN=Zed", "CN=alpha"];
    let mut rows = Vec::new();
    for n in 0..40i64 {
        let mut l = leaf(&format!("l{n}"), "i", &format!("{n:02X}"), 0);
        l.subject_name = subjects[(n as usize * 5) % subjects.len()].to_owned();
        l.not_before = 100 + (n * 7) % 13;
        // Ties on purpose: several leaves share a notAfter, across `now`.
        l.not_after = [900, 1_000, 1_001, 2_000, 500][(n as usize) % 5];
        l.seq = tx.insert_leaf(&l).unwrap();
        if n % 3 == 0 {
            let at = 700 + (n % 4);
            assert!(tx
                .revoke_leaf(&l.id, at, RevocationReason::KeyCompromise, &presigned(1, at))
                .unwrap());
            l.revoked_at = Some(at);
        }
        rows.push(l);
    }
    tx.commit().unwrap();

    let rank = |l: &LeafRow| match (l.revoked_at, l.not_after > now) {
        (Some(_), _) => 2u8,
        (None, true) => 0,
        (None, false) => 1,
    };
    let key = |order: LeafOrder, l: &LeafRow| -> (u8, SortKey, i64) {
        match order {
            LeafOrder::Issued => (0, SortKey::Int(l.seq), l.seq),
            LeafOrder::Subject => (0, SortKey::Text(l.subject_name.to_ascii_lowercase()), l.seq),
            LeafOrder::NotBefore => (0, SortKey::Int(l.not_before), l.seq),
            LeafOrder::NotAfter => (0, SortKey::Int(l.not_after), l.seq),
            LeafOrder::Status => {
                let r = rank(l);
                let k = if r == 2 { l.revoked_at.unwrap() } else { l.not_after };
                (r, SortKey::Int(k), l.seq)
            }
        }
    };
    let cmp_keys = |a: &(u8, SortKey, i64), b: &(u8, SortKey, i64)| {
        let k = match (&a.1, &b.1) {
            (SortKey::Int(x), SortKey::Int(y)) => x.cmp(y),
            (SortKey::Text(x), SortKey::Text(y)) => x.cmp(y),
            _ => unreachable!(),
        };
        a.0.cmp(&b.0).then(k).then(a.2.cmp(&b.2))
    };
    let reader = s;
    for order in [
        LeafOrder::Issued,
        LeafOrder::Subject,
        LeafOrder::NotBefore,
        LeafOrder::NotAfter,
        LeafOrder::Status,
    ] {
        for descending in [false, true] {
            for (active, expired, revoked) in [
                (true, true, true),
                (true, false, false),
                (false, true, true),
                (false, false, true),
                (false, false, false),
            ] {
                let mut expected: Vec<&LeafRow> = rows
                    .iter()
                    .filter(|l| [active, expired, revoked][rank(l) as usize])
                    .collect();
                expected.sort_by(|a, b| cmp_keys(&key(order, a), &key(order, b)));
                if descending {
                    expected.reverse();
                }
                let expected: Vec<String> = expected.iter().map(|l| l.id.clone()).collect();
                let statuses = LeafStatuses {
                    active,
                    expired,
                    revoked,
                    now,
                };
                let page = |after: Option<LeafCursor>, offset: u32, limit: u32| {
                    reader
                        .begin(TxMode::Read)
                        .unwrap()
                        .leaf_page(&LeafPage {
                            ca_id: "i".into(),
                            order,
                            descending,
                            statuses,
                            after,
                            offset,
                            limit,
                        })
                        .unwrap()
                };
                let mut walked = Vec::new();
                let mut after = None;
                loop {
                    let got = page(after.clone(), 0, 7);
                    if got.is_empty() {
                        break;
                    }
                    assert!(got.len() <= 7);
                    after = got.last().map(|(_, c)| c.clone());
                    walked.extend(got.into_iter().map(|(r, _)| r.id));
                }
                let case = format!("{order:?} desc={descending} statuses={active}/{expired}/{revoked}");
                assert_eq!(walked, expected, "{case}");
                for offset in [0, 5, 12, 26, 39, 40, 60] {
                    let got: Vec<String> = page(None, offset, 9).into_iter().map(|(r, _)| r.id).collect();
                    let want: Vec<String> = expected.iter().skip(offset as usize).take(9).cloned().collect();
                    assert_eq!(got, want, "{case} offset {offset}");
                }
                // An offset after a cursor counts from the cursor.
                let first = page(None, 0, 3);
                if let Some((_, cursor)) = first.last() {
                    for offset in [0, 4, 20] {
                        let got: Vec<String> = page(Some(cursor.clone()), offset, 6)
                            .into_iter()
                            .map(|(r, _)| r.id)
                            .collect();
                        let want: Vec<String> = expected.iter().skip(3 + offset as usize).take(6).cloned().collect();
                        assert_eq!(got, want, "{case} cursor+offset {offset}");
                    }
                }
            }
        }
    }
}
