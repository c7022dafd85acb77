//! Segment config: the `pub const`s a route file may export to configure its route, and the
//! names that look like one but would be ignored.
//!
//! Arbor reads `MAX_DURATION` and `REVALIDATE` (Next.js's `maxDuration` and `revalidate`). A
//! misspelled one (`MAX_DURATIONS`, `revalidate`) or one of the Next.js configs Arbor has no use
//! for (`dynamic`, `runtime`, ...) would compile and silently do nothing, so it is a build
//! error instead. Other `pub const`s are the file's own business and are left alone.

/// The segment config Arbor reads, with what each one does.
pub(crate) const KNOWN: [(&str, &str); 2] = [
    (
        "MAX_DURATION",
        "seconds before a request to the route times out",
    ),
    ("REVALIDATE", "seconds a `GET` response is cached"),
];

/// Next.js route segment config with no meaning in Arbor, and why.
const UNSUPPORTED: [(&str, &str); 5] = [
    (
        "dynamic",
        "Next.js uses it to choose between rendering a route at build time or per request; \
         Arbor prerenders nothing, every request runs the handler (cache `GET` responses with \
         `pub const REVALIDATE: u64` instead)",
    ),
    (
        "dynamicParams",
        "Next.js uses it for params that `generateStaticParams` did not list; Arbor generates no \
         static params, every URL the folders match reaches the handler",
    ),
    (
        "runtime",
        "Next.js uses it to pick the Node.js or the Edge runtime; an Arbor route is compiled into \
         your binary and runs on its tokio runtime",
    ),
    (
        "preferredRegion",
        "Next.js uses it to pick a deployment region on its host; where an Arbor binary runs is \
         decided where you deploy it",
    ),
    (
        "fetchCache",
        "Next.js uses it to configure its patched `fetch`; Arbor does not wrap your HTTP client",
    ),
];

/// What is wrong with a `pub const` or `pub static` of a route file, as a message and a help
/// line; `None` when it is a supported config (checked elsewhere) or not config at all.
pub(crate) fn unknown_config(name: &str) -> Option<(String, String)> {
    if KNOWN.iter().any(|(known, _)| *known == name) {
        return None;
    }
    let key = normalize(name);
    if let Some((next_name, why)) = UNSUPPORTED
        .iter()
        .find(|(next_name, _)| normalize(next_name) == key)
    {
        let spelling = if name == *next_name {
            String::new()
        } else {
            format!(" (`{next_name}`)")
        };
        return Some((
            format!("`{name}` is Next.js segment config{spelling} that Arbor does not support"),
            format!(
                "remove it: {why}; Arbor's segment config is {}",
                known_list()
            ),
        ));
    }
    let (closest, distance) = KNOWN
        .iter()
        .map(|(known, _)| (*known, edit_distance(&key, &normalize(known))))
        .min_by_key(|(_, distance)| *distance)?;
    if distance > 2 {
        return None;
    }
    let message = if distance == 0 {
        format!("`{name}` is segment config spelled differently: Arbor reads `{closest}`")
    } else {
        format!("`{name}` is not segment config Arbor knows, so it would be ignored")
    };
    Some((
        message,
        format!(
            "rename it to `{closest}` (Arbor's segment config is {}), or make it private if it \
             is a constant of your own",
            known_list()
        ),
    ))
}

fn known_list() -> String {
    KNOWN
        .iter()
        .map(|(name, what)| format!("`{name}` ({what})"))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// `maxDuration`, `max_duration` and `MAX_DURATION` are one name.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Levenshtein distance, on characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn known_config_and_unrelated_consts_pass() {
        for name in [
            "MAX_DURATION",
            "REVALIDATE",
            "PAGE_SIZE",
            "DEFAULT_LIMIT",
            "VERSION",
        ] {
            assert_eq!(unknown_config(name), None, "{name}");
        }
    }

    #[test]
    fn other_spellings_and_near_misses_suggest_the_known_name() {
        for (name, closest) in [
            ("revalidate", "REVALIDATE"),
            ("maxDuration", "MAX_DURATION"),
            ("MAXDURATION", "MAX_DURATION"),
            ("MAX_DURATIONS", "MAX_DURATION"),
            ("REVALIDATED", "REVALIDATE"),
            ("REVALDATE", "REVALIDATE"),
        ] {
            let (message, help) = unknown_config(name).unwrap();
            assert!(message.contains(&format!("`{name}`")), "{message}");
            assert!(
                help.starts_with(&format!("rename it to `{closest}`")),
                "{name}: {help}"
            );
        }
    }

    #[test]
    fn unsupported_next_config_says_why() {
        let (message, help) = unknown_config("DYNAMIC").unwrap();
        assert_eq!(
            message,
            "`DYNAMIC` is Next.js segment config (`dynamic`) that Arbor does not support"
        );
        assert!(help.contains("Arbor prerenders nothing"), "{help}");
        for name in [
            "runtime",
            "PREFERRED_REGION",
            "fetchCache",
            "DYNAMIC_PARAMS",
        ] {
            let (message, help) = unknown_config(name).unwrap();
            assert!(message.contains("that Arbor does not support"), "{message}");
            assert!(help.contains("`MAX_DURATION`"), "{help}");
        }
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("REVALIDATE", "REVALIDATE"), 0);
        assert_eq!(edit_distance("MAXDURATIONS", "MAXDURATION"), 1);
        assert_eq!(edit_distance("REVALDATE", "REVALIDATE"), 1);
        assert_eq!(edit_distance("", "ABC"), 3);
    }
}
