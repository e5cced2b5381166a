//! OData query options of the collections (`$filter`, `$orderby`, `$select`,
//! `$top`, `$skip`, `$count`, `$skiptoken`, percent-encoded): `parse_query`,
//! `Options::parse`, filtering, ordering and paging over sample entities, and
//! the nextLinks the API writes from them.
#![no_main]

use cloudpki::api::fuzzing::odata_query;
use http::StatusCode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let run = match odata_query(query) {
        Ok(run) => run,
        Err(e) => {
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{e:?}");
            return;
        }
    };
    if let Some(top) = run.top {
        assert!((1..=999).contains(&top), "$top={top} accepted");
    }
    let pages = run.offset_pages.iter().zip(run.samples);
    for (page, samples) in pages.filter_map(|(p, n)| p.as_ref().ok().map(|p| (p, n))) {
        assert!(page.total <= samples);
        assert!(page.page.len() <= page.total);
        if let Some(top) = run.top {
            assert!(page.page.len() <= top as usize);
        }
        let skip = run.skip.unwrap_or(0).min(page.total);
        assert_eq!(page.more, page.total - skip > page.page.len(), "{page:?}");
    }
    for page in run.offset_pages.iter().flatten().chain(run.keyset_page.as_ref()) {
        // $select keeps the named properties, id and @odata.type only.
        if let Some(props) = &page.select {
            for v in &page.page {
                for k in v.as_object().into_iter().flat_map(|m| m.keys()) {
                    assert!(
                        k == "id" || k == "@odata.type" || props.contains(k),
                        "{k} kept by $select={props:?}"
                    );
                }
            }
        }
    }
    // What a page links to next must parse again.
    for (next, r) in &run.next_links {
        assert!(r.is_ok(), "nextLink query {next:?} of {query:?} refused: {r:?}");
    }
    if let Some((activity, back)) = &run.activity {
        assert_eq!(Some(activity), back.as_ref(), "activityType round trip of {query:?}");
    }
});
