//! Budget checkpoints inside the engines' loops ([`super::budget::tick`]), which neither crate
//! offers: without them `{{define}}`/`{{template}}` recursion or nested `{{#each}}` blocks with
//! empty bodies run without calling any function or writing any byte.
//!
//! - gotmpl: after parsing, every block body (template, `define`, `if`, `range`, `with`, `else`)
//!   starts with a call of [`TICK`], a name no template can spell (it holds a space);
//! - handlebars: every `{{#each}}` opening gets the hash argument `__budget=(__budget)`, so each
//!   loop's start calls the helper; a loop's own iterations are bounded by its list, which the
//!   budget bounds.

use gotmpl::parse::{ActionNode, CommandNode, Expr, ListNode, Node, PipeNode, SmolStr};

/// The checkpoint function's name in gotmpl (not a valid identifier, so only we can call it).
pub const TICK: &str = "budget tick";

/// The checkpoint helper's name in handlebars.
pub const HB_TICK: &str = "__budget";

/// `tree` with a checkpoint at the start of every block body.
pub fn go_tree(mut tree: ListNode) -> ListNode {
    instrument(&mut tree);
    tree
}

fn instrument(list: &mut ListNode) {
    for node in &mut list.nodes {
        match node {
            Node::List(l) => instrument(l),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                instrument(&mut b.body);
                if let Some(e) = &mut b.else_body {
                    instrument(e);
                }
            }
            Node::Define(d) => instrument(&mut d.body),
            _ => {}
        }
    }
    let pos = list.pos;
    let tick = Node::Action(ActionNode {
        pos,
        pipe: PipeNode {
            pos,
            decl: Vec::new(),
            commands: vec![CommandNode { pos, args: vec![Expr::Identifier(pos, SmolStr::new(TICK))] }],
            is_assign: false,
        },
    });
    list.nodes.insert(0, tick);
}

/// Handlebars `source` with a checkpoint argument in every `{{#each ...}}` opening. Raw blocks
/// (`{{{{raw}}}}`) and escaped mustaches (`\{{`) are left as they are.
pub fn handlebars_source(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        let (before, at) = rest.split_at(open);
        out.push_str(before);
        if before.ends_with('\\') || at.starts_with("{{{{") {
            // Escaped: copy this mustache untouched; raw block: up to its closing tag.
            let end = if at.starts_with("{{{{") {
                at.find("{{{{/").and_then(|c| at[c..].find("}}}}").map(|e| c + e + 4)).unwrap_or(at.len())
            } else {
                at.find("}}").map_or(at.len(), |i| i + 2)
            };
            out.push_str(&at[..end]);
            rest = &at[end..];
            continue;
        }
        let head = at[2..].trim_start_matches('~').trim_start();
        let is_each = head.strip_prefix("#each").is_some_and(|t| t.starts_with(|c: char| c.is_whitespace()));
        let Some(close) = tag_end(at) else {
            out.push_str(at);
            return out;
        };
        let tag = &at[..close];
        if is_each {
            let insert_at = block_params_start(tag).unwrap_or_else(|| tag.len() - if tag.ends_with("~}}") { 3 } else { 2 });
            out.push_str(&tag[..insert_at]);
            out.push_str(&format!(" {HB_TICK}=({HB_TICK}) "));
            out.push_str(&tag[insert_at..]);
        } else {
            out.push_str(tag);
        }
        rest = &at[close..];
    }
    out.push_str(rest);
    out
}

/// Deepest nesting of handlebars blocks, and of subexpressions in one mustache, a template may
/// use (the crate parses and renders them recursively: a few thousand levels overflow the stack).
pub const HB_MAX_NESTING: usize = 64;

/// An error when handlebars `source` nests blocks or subexpressions deeper than
/// [`HB_MAX_NESTING`].
pub fn handlebars_nesting(source: &str) -> Result<(), String> {
    let too_deep = || format!("blocks and subexpressions may nest at most {HB_MAX_NESTING} deep");
    let (mut depth, mut rest) = (0usize, source);
    while let Some(open) = rest.find("{{") {
        let at = &rest[open..];
        let Some(close) = tag_end(at) else { break };
        let tag = &at[..close];
        let head = tag[2..].trim_start_matches('{').trim_start_matches('~').trim_start();
        if head.starts_with('!') {
            rest = &at[close..];
            continue;
        }
        // `{{#name` and `{{^name` (an inverted section) open a block; `{{^}}` is an `else`.
        let inverted = head.strip_prefix('^').is_some_and(|h| !h.trim_start_matches('~').starts_with("}}"));
        if head.starts_with('#') || inverted {
            depth += 1;
        } else if head.starts_with('/') {
            depth = depth.saturating_sub(1);
        }
        let (mut parens, mut deepest) = (0usize, 0usize);
        for b in tag.bytes() {
            match b {
                b'(' => {
                    parens += 1;
                    deepest = deepest.max(parens);
                }
                b')' => parens = parens.saturating_sub(1),
                _ => {}
            }
        }
        if depth > HB_MAX_NESTING || deepest > HB_MAX_NESTING {
            return Err(too_deep());
        }
        rest = &at[close..];
    }
    Ok(())
}

/// End (exclusive) of the mustache starting `tag` (`{{`), skipping string literals, `[...]`
/// segments and subexpressions.
fn tag_end(tag: &str) -> Option<usize> {
    // Comments first: their text is not parsed, so a quote or brace in one means nothing (a `"`
    // in `{{!-- " --}}` once made the rest of the template look like a string to this scanner).
    let inner = tag.get(2..)?.trim_start_matches('~');
    if let Some(body) = inner.strip_prefix("!--") {
        let start = tag.len() - body.len();
        let close = ["--}}", "--~}}"].iter().filter_map(|c| body.find(c).map(|i| i + c.len())).min()?;
        return Some(start + close);
    }
    if inner.starts_with('!') {
        return tag.find("}}").map(|i| i + 2);
    }
    let bytes = tag.as_bytes();
    let (mut i, mut parens) = (2, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'"' | b'\'') => i = string_end(bytes, i, q),
            b'[' => {
                while i < bytes.len() && bytes[i] != b']' {
                    i += 1;
                }
            }
            b'(' => parens += 1,
            b')' => parens = parens.saturating_sub(1),
            b'}' if parens == 0 && bytes.get(i + 1) == Some(&b'}') => return Some(i + 2),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Offset of the closing quote `q` of the string literal opening at `start` (or the end).
fn string_end(bytes: &[u8], start: usize, q: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() && bytes[i] != q {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    i
}

/// Offset of ` as |` (block parameters) in an opening tag, outside strings and subexpressions.
fn block_params_start(tag: &str) -> Option<usize> {
    let bytes = tag.as_bytes();
    let (mut i, mut parens) = (2, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'"' | b'\'') => i = string_end(bytes, i, q),
            b'(' => parens += 1,
            b')' => parens = parens.saturating_sub(1),
            c if c.is_ascii_whitespace() && parens == 0 => {
                let after = tag[i..].trim_start();
                if after.strip_prefix("as").is_some_and(|t| t.trim_start().starts_with('|')) {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_openings_get_a_checkpoint_before_block_params() {
        assert_eq!(handlebars_source("a{{#each xs as |x|}}{{x}}{{/each}}"), "a{{#each xs __budget=(__budget)  as |x|}}{{x}}{{/each}}");
        assert_eq!(handlebars_source("{{~#each (f \"}}\") ~}}{{/each}}"), "{{~#each (f \"}}\")  __budget=(__budget) ~}}{{/each}}");
        assert_eq!(
            handlebars_source("\\{{#each x}} {{{{raw}}}}{{#each y}}{{{{/raw}}}}"),
            "\\{{#each x}} {{{{raw}}}}{{#each y}}{{{{/raw}}}}"
        );
        assert_eq!(handlebars_source("{{#if x}}{{eachx}}{{/if}}"), "{{#if x}}{{eachx}}{{/if}}");
    }

    #[test]
    fn comments_do_not_hide_blocks_from_the_checks() {
        // A quote inside a comment once desynchronised the scanner: the blocks after it were
        // neither counted nor given a checkpoint (a stack overflow and an unbounded loop).
        let nested = |n: usize| format!("{}x{}", "{{#if true}}".repeat(n), "{{/if}}".repeat(n));
        for comment in ["{{!-- \" --}}", "{{!-- ' ( [ --}}", "{{~!-- \" --~}}", "{{! \" }}"] {
            assert!(handlebars_nesting(&format!("{comment}{}{comment}", nested(70))).is_err(), "{comment}");
            assert!(handlebars_nesting(&format!("{comment}{}{comment}", nested(10))).is_ok(), "{comment}");
            assert_eq!(
                handlebars_source(&format!("{comment}{{{{#each xs}}}}{{{{/each}}}}")),
                format!("{comment}{{{{#each xs __budget=(__budget) }}}}{{{{/each}}}}")
            );
        }
        // Inverted sections open blocks too; `{{^}}` is an else.
        assert!(handlebars_nesting(&format!("{}x{}", "{{^x}}".repeat(70), "{{/x}}".repeat(70))).is_err());
        assert!(handlebars_nesting("{{#if a}}1{{^}}2{{/if}}").is_ok());
    }
}
