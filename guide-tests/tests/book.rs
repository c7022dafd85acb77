//! The book in `docs/`: every page is in `SUMMARY.md` (so the book shows it) and compiled by
//! this crate (so its Rust blocks are tested), and every link between pages reaches a page and,
//! with a `#fragment`, a heading of it.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn pages() -> BTreeSet<String> {
    std::fs::read_dir(docs())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".md") && name != "SUMMARY.md")
        .collect()
}

fn read(page: &str) -> String {
    std::fs::read_to_string(docs().join(page)).unwrap()
}

/// Markdown links `[text](target)` outside code blocks and code spans.
fn links(markdown: &str) -> Vec<String> {
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let code_span = regex::Regex::new(r"`[^`]*`").unwrap();
    let mut in_code = false;
    let mut found = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let prose = code_span.replace_all(line, "");
        found.extend(link.captures_iter(&prose).map(|c| c[1].to_owned()));
    }
    found
}

/// The anchors mdBook and GitHub give a page's headings: lower case, spaces to `-`, other
/// punctuation dropped.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        let Some(heading) = line.strip_prefix('#').filter(|_| !in_code) else {
            continue;
        };
        let text = heading.trim_start_matches('#').trim();
        let anchor: String = text
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        // A repeated heading gets `-1`, `-2`, … after its first.
        let mut unique = anchor.clone();
        let mut repeat = 0;
        while !found.insert(unique.clone()) {
            repeat += 1;
            unique = format!("{anchor}-{repeat}");
        }
    }
    found
}

#[test]
fn every_page_is_in_the_summary_and_compiled() {
    let summary = read("SUMMARY.md");
    let listed: BTreeSet<String> = links(&summary).into_iter().collect();
    let compiled =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for page in pages() {
        assert!(
            listed.contains(&page),
            "docs/{page} is not in docs/SUMMARY.md"
        );
        assert!(
            compiled.contains(&format!("include_str!(\"../../docs/{page}\")")),
            "docs/{page} is not compiled by guide-tests/src/lib.rs"
        );
    }
    for page in &listed {
        assert!(
            docs().join(page).is_file(),
            "SUMMARY.md lists {page}, which does not exist"
        );
    }
}

#[test]
fn links_between_pages_reach_their_page_and_heading() {
    let mut broken = Vec::new();
    for page in pages() {
        for target in links(&read(&page)) {
            if target.contains("://") || target.starts_with("mailto:") || target.contains("::") {
                continue; // the web, or an intra-doc link to an item
            }
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target.as_str(), None),
            };
            let file = if file.is_empty() { page.as_str() } else { file };
            let path = docs().join(file);
            if !path.exists() {
                broken.push(format!("docs/{page}: {target} (no such file)"));
                continue;
            }
            if let (Some(fragment), true) = (fragment, file.ends_with(".md")) {
                let text = std::fs::read_to_string(&path).unwrap();
                if !anchors(&text).contains(fragment) {
                    broken.push(format!("docs/{page}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_follow_the_renderers() {
    let headings =
        anchors("# Arbor compared\n## axum + utoipa\n### `Builder` options\n```\n# not\n```\n");
    assert_eq!(
        headings,
        ["arbor-compared", "axum--utoipa", "builder-options"]
            .map(str::to_owned)
            .into()
    );
}
