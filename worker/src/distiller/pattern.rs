//! event_type patterns: Python `fnmatch` globs, compiled once.
//!
//! Hand-written rather than `globset`/`glob` because fnmatch differs from both in
//! small ways that matter for users' files: `*` crosses `.` (and `/`), `{a,b}` and
//! `\` are literal, `[!...]` negates, `]` first in a class is literal, and an
//! unclosed `[` is a literal bracket instead of an error. Matching is case-sensitive
//! (POSIX fnmatch). `*` alone and plain literals take fast paths.

/// A compiled glob.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Any,
    Literal(String),
    Tokens(Vec<Tok>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Char(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star);
                    }
                    i += 1;
                }
                '?' => {
                    toks.push(Tok::AnyChar);
                    i += 1;
                }
                '[' => match parse_class(&chars, i + 1) {
                    Some((tok, next)) => {
                        toks.push(tok);
                        i = next;
                    }
                    None => {
                        toks.push(Tok::Char('['));
                        i += 1;
                    }
                },
                c => {
                    toks.push(Tok::Char(c));
                    i += 1;
                }
            }
        }
        let kind = if toks == [Tok::Star] {
            Kind::Any
        } else if toks.iter().all(|t| matches!(t, Tok::Char(_))) {
            Kind::Literal(pattern.to_string())
        } else {
            Kind::Tokens(toks)
        };
        Glob { kind }
    }

    pub fn is_match(&self, text: &str) -> bool {
        match &self.kind {
            Kind::Any => true,
            Kind::Literal(s) => s == text,
            Kind::Tokens(toks) => {
                let chars: Vec<char> = text.chars().collect();
                match_from(toks, &chars)
            }
        }
    }
}

/// Parses a class body starting after `[`; `None` if there is no closing `]`.
fn parse_class(chars: &[char], mut i: usize) -> Option<(Tok, usize)> {
    let mut negated = false;
    if chars.get(i) == Some(&'!') {
        negated = true;
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        if c == ']' && !first {
            return Some((Tok::Class { negated, items }, i + 1));
        }
        first = false;
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&e| e != ']') {
            items.push((c, chars[i + 2]));
            i += 3;
        } else {
            items.push((c, c));
            i += 1;
        }
    }
}

fn tok_matches(tok: &Tok, c: char) -> bool {
    match tok {
        Tok::Char(x) => *x == c,
        Tok::AnyChar => true,
        Tok::Star => false,
        Tok::Class { negated, items } => {
            items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
    }
}

/// Iterative glob match with single-star backtracking (linear in practice).
fn match_from(toks: &[Tok], text: &[char]) -> bool {
    let (mut t, mut s) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while s < text.len() {
        if t < toks.len() && toks[t] == Tok::Star {
            star = Some((t, s));
            t += 1;
        } else if t < toks.len() && tok_matches(&toks[t], text[s]) {
            t += 1;
            s += 1;
        } else if let Some((st, ss)) = star {
            t = st + 1;
            s = ss + 1;
            star = Some((st, ss + 1));
        } else {
            return false;
        }
    }
    toks[t..].iter().all(|x| *x == Tok::Star)
}

/// A definition's `event_type` list: inclusions and `!` exclusions.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeMatcher {
    include: Vec<Glob>,
    exclude: Vec<Glob>,
}

impl TypeMatcher {
    /// Only exclusions imply an inclusion of `*`.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> TypeMatcher {
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        for p in patterns {
            match p.as_ref().strip_prefix('!') {
                Some(rest) => exclude.push(Glob::new(rest)),
                None => include.push(Glob::new(p.as_ref())),
            }
        }
        if include.is_empty() && !exclude.is_empty() {
            include.push(Glob::new("*"));
        }
        TypeMatcher { include, exclude }
    }

    pub fn is_match(&self, event_type: &str) -> bool {
        self.include.iter().any(|g| g.is_match(event_type))
            && !self.exclude.iter().any(|g| g.is_match(event_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_rules() {
        let m = |p: &str, s: &str| Glob::new(p).is_match(s);
        assert!(m("*", "anything.at.all"));
        assert!(m("compute.instance.*", "compute.instance.create.end"));
        assert!(!m("compute.instance.*", "compute.instances"));
        assert!(m("compute.*.end", "compute.instance.create.end"));
        assert!(m("compute.instance.[cd]*", "compute.instance.delete.end"));
        assert!(!m("compute.instance.[!cd]*", "compute.instance.delete.end"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("a[", "a["));
        assert!(m("[]]x", "]x"));
        assert!(m("{a,b}", "{a,b}"));
        assert!(!m("Compute.*", "compute.x"));
        assert!(m("*.*.*", "a.b.c"));
        assert!(m("a*b*c", "aXbYbc"));
        assert!(m("x[a-c]y", "xby"));
    }

    #[test]
    fn exclusions() {
        let t = TypeMatcher::new(&["*", "!compute.instance.create.end"]);
        assert!(!t.is_match("compute.instance.create.end"));
        assert!(t.is_match("compute.instance.update"));
        let only = TypeMatcher::new(&["!compute.instance.exists"]);
        assert!(only.is_match("compute.instance.update"));
        assert!(!only.is_match("compute.instance.exists"));
    }
}
