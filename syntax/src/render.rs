//! Tokens back to one line of source, spaced the way rustfmt spaces expressions.
//!
//! `TokenStream`'s own `Display` puts a space between every pair of tokens
//! (`rate_limit (limit = 5)`), and patching that text with string replacements also rewrites
//! string literals. Here every token is printed exactly as it came (a literal keeps its quotes,
//! escapes and suffix; an identifier its `r#`), and only the spaces between tokens are chosen.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// Renders tokens on one line: `rate_limit(limit = 5, key = "a. b")`, `crate::mw::csrf`,
/// `timeout(60 * 5)`, `cors().allow_origin(&ORIGIN)`.
pub fn render_tokens(tokens: TokenStream) -> String {
    let mut out = String::new();
    render_into(&mut out, tokens);
    out
}

/// One unit of output: a word (identifier or literal), an operator (adjacent joint punctuation,
/// such as `::` or `=>`), or a delimited group.
enum Atom {
    Word(String),
    Op(String),
    Group(Delimiter, TokenStream),
}

fn atoms(tokens: TokenStream) -> Vec<Atom> {
    let mut atoms = Vec::new();
    let mut run = String::new();
    for tree in tokens {
        match tree {
            TokenTree::Punct(punct) => {
                run.push(punct.as_char());
                if punct.spacing() == Spacing::Alone {
                    split_operators(&mut atoms, &std::mem::take(&mut run));
                }
            }
            other => {
                split_operators(&mut atoms, &std::mem::take(&mut run));
                atoms.push(match other {
                    TokenTree::Ident(ident) => Atom::Word(ident.to_string()),
                    TokenTree::Literal(literal) => Atom::Word(literal.to_string()),
                    TokenTree::Group(group) => Atom::Group(group.delimiter(), group.stream()),
                    TokenTree::Punct(_) => unreachable!("matched above"),
                });
            }
        }
    }
    split_operators(&mut atoms, &run);
    atoms
}

/// Rust's operators of more than one character, longest first.
const OPERATORS: [&str; 24] = [
    "..=", "...", "<<=", ">>=", "::", "->", "=>", "==", "!=", "<=", ">=", "&&", "||", "+=", "-=",
    "*=", "/=", "%=", "^=", "&=", "|=", "<<", ">>", "..",
];

/// A run of joint punctuation (`>::`, `=&`) cut into operators, longest match first.
fn split_operators(atoms: &mut Vec<Atom>, mut run: &str) {
    while let Some(first) = run.chars().next() {
        let len = OPERATORS
            .iter()
            .find(|op| run.starts_with(*op))
            .map_or(first.len_utf8(), |op| op.len());
        atoms.push(Atom::Op(run[..len].to_owned()));
        run = &run[len..];
    }
}

/// Keywords after which an operator starts an operand rather than continuing one
/// (`move |x| ..`, `return -1`, `&mut x`).
const LEADING_KEYWORDS: [&str; 14] = [
    "move", "return", "in", "if", "else", "match", "mut", "let", "ref", "dyn", "impl", "while",
    "break", "async",
];

/// How an operator sits between its neighbours.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fix {
    /// `a + b`: a space on both sides.
    Infix,
    /// `-x`, `&x`, `!x`, `#[..]`, `'a`: no space after, and the space before decided by what
    /// comes before.
    Prefix,
    /// `a::b`, `a.b`, `0..10`, `vec![..]`, `Vec::<u8>`: no space on either side.
    Tight,
    /// `a, b`, `a: b`, `a; b`: no space before, one after.
    Separator,
    /// `a?`: no space before.
    Postfix,
}

fn render_into(out: &mut String, tokens: TokenStream) {
    let atoms = atoms(tokens);
    // Whether the next atom is written right after the previous one, with no space.
    let mut glued = true;
    // Whether the previous atom ends an operand (so that `-`, `&`, `*`, `|` after it are binary).
    let mut after_operand = false;
    // Inside `|params|` of a closure, or `<..>` of a turbofish.
    let mut closure_params = false;
    let mut angle_depth = 0usize;
    let mut previous_op: Option<String> = None;

    for atom in atoms {
        match atom {
            Atom::Word(word) => {
                if !glued {
                    out.push(' ');
                }
                after_operand = !LEADING_KEYWORDS.contains(&word.as_str());
                out.push_str(&word);
                glued = false;
                previous_op = None;
            }
            Atom::Group(delimiter, inner) => {
                // `f(x)`, `a[0]`, `vec![..]` are glued to what precedes them; `S { .. }` is not.
                let space = !glued && (delimiter == Delimiter::Brace || !after_operand);
                if space {
                    out.push(' ');
                }
                let inner_text = render_tokens(inner);
                match delimiter {
                    Delimiter::Parenthesis => {
                        out.push('(');
                        out.push_str(&inner_text);
                        out.push(')');
                    }
                    Delimiter::Bracket => {
                        out.push('[');
                        out.push_str(&inner_text);
                        out.push(']');
                    }
                    Delimiter::Brace if inner_text.is_empty() => out.push_str("{}"),
                    Delimiter::Brace => {
                        out.push_str("{ ");
                        out.push_str(&inner_text);
                        out.push_str(" }");
                    }
                    Delimiter::None => out.push_str(&inner_text),
                }
                glued = false;
                after_operand = true;
                previous_op = None;
            }
            Atom::Op(op) => {
                let fix = match op.as_str() {
                    "," | ";" | ":" => Fix::Separator,
                    "::" | "." | ".." | "..=" => Fix::Tight,
                    "?" => Fix::Postfix,
                    "'" | "#" => Fix::Prefix,
                    ">>" if angle_depth > 1 => {
                        angle_depth -= 2;
                        Fix::Tight
                    }
                    // A macro call, `name!(..)`.
                    "!" if after_operand => Fix::Tight,
                    "<" if previous_op.as_deref() == Some("::") => {
                        angle_depth += 1;
                        Fix::Tight
                    }
                    ">" if angle_depth > 0 => {
                        angle_depth -= 1;
                        Fix::Tight
                    }
                    "|" if !after_operand => {
                        closure_params = true;
                        Fix::Prefix
                    }
                    "||" if !after_operand => {
                        // A closure without parameters: `|| x`.
                        if !glued {
                            out.push(' ');
                        }
                        out.push_str("||");
                        glued = false;
                        previous_op = Some(op);
                        continue;
                    }
                    "|" if closure_params => {
                        closure_params = false;
                        // The closing `|` of the parameters: `|x| x`.
                        out.push('|');
                        glued = false;
                        after_operand = false;
                        previous_op = Some(op);
                        continue;
                    }
                    "-" | "!" | "&" | "&&" | "*" if !after_operand => Fix::Prefix,
                    _ => Fix::Infix,
                };
                match fix {
                    Fix::Infix => {
                        if !out.is_empty() {
                            out.push(' ');
                        }
                        out.push_str(&op);
                        glued = false;
                    }
                    Fix::Prefix => {
                        if !glued {
                            out.push(' ');
                        }
                        out.push_str(&op);
                        glued = true;
                    }
                    Fix::Tight => {
                        out.push_str(&op);
                        glued = true;
                    }
                    Fix::Separator => {
                        out.push_str(&op);
                        glued = false;
                    }
                    Fix::Postfix => {
                        out.push_str(&op);
                        glued = false;
                    }
                }
                after_operand = fix == Fix::Postfix;
                previous_op = Some(op);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn render(src: &str) -> String {
        render_tokens(src.parse().unwrap())
    }

    #[test]
    fn literals_are_printed_as_written() {
        for src in [
            r#"key = ". ""#,
            r#"prefix = "a. b ( c ) , d :: e""#,
            r#"raw = r"x . y""#,
            r##"raw = r#"quote " . "#"##,
            r"byte = b'.'",
            r"n = 1_000u64",
            r"c = '('",
        ] {
            assert_eq!(render(src), src);
        }
    }

    #[test]
    fn expressions_are_spaced_like_rustfmt() {
        for (src, expected) in [
            (
                "rate_limit ( limit = 5 , window = 60 )",
                "rate_limit(limit = 5, window = 60)",
            ),
            ("crate :: mw :: csrf", "crate::mw::csrf"),
            ("::arbor::timeout(3)", "::arbor::timeout(3)"),
            ("timeout(60*5)", "timeout(60 * 5)"),
            (
                "a(-1, !flag, &CFG, *ptr, x - 1)",
                "a(-1, !flag, &CFG, *ptr, x - 1)",
            ),
            (
                "cors().allow_origin(&ORIGINS[0]).max_age(60)",
                "cors().allow_origin(&ORIGINS[0]).max_age(60)",
            ),
            (
                "b(Vec::<u8>::new(), 0..10, x?, vec![1, 2])",
                "b(Vec::<u8>::new(), 0..10, x?, vec![1, 2])",
            ),
            (
                "c(|r| r.len() > 0, || true, move |x| x)",
                "c(|r| r.len() > 0, || true, move |x| x)",
            ),
            (
                "d(S { a: 1 }, S {}, a && b, a || b, 'static)",
                "d(S { a: 1 }, S {}, a && b, a || b, 'static)",
            ),
            (
                "e(x as u64, if a { 1 } else { 2 })",
                "e(x as u64, if a { 1 } else { 2 })",
            ),
        ] {
            assert_eq!(render(src), expected, "{src}");
        }
    }

    #[test]
    fn rendering_parses_back_to_the_same_tokens() {
        let src = r#"f(a::b(1, "x. y"), c = [1, 2], d = -3 * e.f()?, g = |x| x + 1)"#;
        let rendered = render(src);
        let again: TokenStream = rendered.parse().unwrap();
        let original: TokenStream = src.parse().unwrap();
        assert_eq!(again.to_string(), original.to_string());
    }
}
