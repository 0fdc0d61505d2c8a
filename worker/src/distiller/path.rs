//! Field paths: the jsonpath-rw 1.4 language of event definitions, compiled once at
//! load.
//!
//! # Why our own parser and walker
//!
//! Definitions are written in jsonpath-rw's language, which is not RFC 9535 and has
//! no Rust implementation: `|` binds tighter than `.`, `where` filters, `[*]` wraps
//! a scalar, and an index on a string picks a character. A JSONPath crate would
//! parse different text and answer differently, so the language is parsed here, to
//! a tree with jsonpath-rw's precedences, and the answers are checked against
//! jsonpath-rw itself (`tests/data/jsonpath/jsonpath_rw.json`, produced by running
//! it). Before this, two designs for the common paths were measured on the Nova
//! sample (`benches/distill.rs`, group `jsonpath`, numbers in
//! `docs/benchmarks.md`): translating to RFC 9535 for `serde_json_path`, and
//! walking a pre-compiled list of steps. The step walk was about 4.4 times faster,
//! because it stops at the first non-null match and allocates nothing; so a path
//! made only of keys, indexes, slices and top-level unions (nearly every real one)
//! is still compiled to steps, and only the rest (`..`, `where`, a union inside a
//! path, `` `this` ``, `` `parent` ``, `$` after the start) is evaluated on the tree.
//!
//! # Grammar (jsonpath-rw 1.4)
//!
//! ```text
//! path  := path '..' path | path '.' path | path '|' path | path '&' path
//!        | path 'where' path | path '[' inner ']' | atom
//! atom  := ID {',' ID} | '*' | '`this`' | '`parent`' | '$' | '[' inner ']' | '(' path ')'
//! inner := NUMBER | '*' | [NUMBER] ':' [NUMBER] | ID {',' ID}
//! ```
//!
//! Binary operators are left-associative; from loosest to tightest: `..`, `.`, `|`,
//! `&`, `where`; a bracket binds to what is just before it. So `a.b|c.d` means
//! `a.(b|c).d`, which is why [`FieldPath::notes`] warns about it. IDs are
//! `[a-zA-Z_@][a-zA-Z0-9_@-]*` or quoted with `'`, `"` (backslash escapes); `where`
//! is a keyword.
//!
//! # Meaning (jsonpath-rw's, as stackdistiller used it)
//!
//! - a key on anything but an object matches nothing; `*` (or a quoted `'*'` among
//!   the keys) takes every key of an object, in document order;
//! - `[n]` indexes a list (negative from the end) or picks the n-th character of a
//!   string; anything else matches nothing (jsonpath-rw raised on an object, a
//!   number or an index past the start, and the notification was lost);
//! - `[*]` and `[a:b]` slice a list; an object, a string, an integer or a boolean is
//!   first wrapped in a one-element list (a float or null matches nothing: there
//!   jsonpath-rw raised);
//! - `a..b`: `b` at `a` and at every depth below it, depth first, in document order;
//! - `a where b`: the matches of `a` under which `b` matches (a key present with a
//!   null value counts);
//! - `a|b`: the matches of `a`, then those of `b`; a list of fields is the union of
//!   its entries, each in parentheses;
//! - `` `this` `` is the current value, `` `parent` `` the one above it, `$` the
//!   notification;
//! - `&` was parsed by jsonpath-rw but never implemented (every notification
//!   reaching such a trait raised and was lost), so it is refused at load, by name;
//! - the path shown to plugins is the steps joined by `.`: keys unquoted, indexes as
//!   `[n]` (`payload.fixed_ips[1]` shows as `payload.fixed_ips.[1]`).
//!
//! Only non-null matches count: a trait takes the first, a plugin sees them all.

use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// A matched value: borrowed from the notification, or owned when jsonpath-rw made
/// it (a character of a string).
pub type Found<'a> = Cow<'a, Value>;

/// A match handed to plugins: the jsonpath-rw style path and the (non-null) value.
pub type Match<'a> = (String, Found<'a>);

/// A compiled field specification.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    plan: Plan,
    /// The parsed tree (for messages and notes).
    expr: Expr,
    /// What a `|` at the top of each specification separates, as written: the
    /// paths someone writing `a.b|c.d` most likely meant (for notes).
    pieces: Vec<String>,
}

/// How a path is evaluated.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    /// An ordered union of step lists: the fast walk.
    Steps(Vec<Vec<Step>>),
    /// Anything else: the tree, evaluated as jsonpath-rw did.
    Tree,
}

/// One step of a compiled step list.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// `.key`, `'quoted.key'`, `[key]`.
    Key(String),
    /// `[a,b]` or `a,b`: each key in order.
    Keys(Vec<String>),
    /// `.*`: every value of an object.
    AllKeys,
    /// `[n]`.
    Index(i64),
    /// `[*]`, `[a:b]`.
    Slice(Option<i64>, Option<i64>),
}

/// The syntax tree of a path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Root,
    This,
    Parent,
    /// Keys of an object; `*` among them means all keys.
    Fields(Vec<String>),
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Child(Box<Expr>, Box<Expr>),
    Descendants(Box<Expr>, Box<Expr>),
    Where(Box<Expr>, Box<Expr>),
    Union(Box<Expr>, Box<Expr>),
    Intersect(Box<Expr>, Box<Expr>),
}

impl FieldPath {
    /// Compiles one jsonpath-rw specification.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let tokens = lex(spec)?;
        let pieces = top_level_pieces(spec, &tokens);
        let mut p = Parser { tokens, pos: 0 };
        let expr = p.path(0)?;
        if let Some((tok, at)) = p.tokens.get(p.pos) {
            return Err(format!(
                "unexpected {} at column {} of field path '{spec}'",
                tok.describe(),
                at + 1
            ));
        }
        let mut path = FieldPath::from_expr(expr)?;
        path.pieces = pieces;
        Ok(path)
    }

    /// Compiles a list of specifications into one ordered union (stackdistiller
    /// joined them as `(a)|(b)|…`).
    pub fn parse_list<S: AsRef<str>>(specs: &[S]) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut exprs = specs.iter().map(|s| {
            FieldPath::parse(s.as_ref()).map(|p| {
                pieces.extend(p.pieces);
                p.expr
            })
        });
        let first = exprs
            .next()
            .ok_or_else(|| "empty list of fields".to_string())??;
        let expr = exprs.try_fold(first, |acc, next| {
            next.map(|n| Expr::Union(Box::new(acc), Box::new(n)))
        })?;
        let mut path = FieldPath::from_expr(expr)?;
        path.pieces = pieces;
        Ok(path)
    }

    fn from_expr(expr: Expr) -> Result<Self, String> {
        if let Some(e) = expr.find(&|e| matches!(e, Expr::Intersect(..))) {
            return Err(format!(
                "'&' (in `{e}`) is not supported: jsonpath-rw parsed it but never \
                 implemented it, so every notification reaching this trait raised an \
                 error and was lost; use `where`, or two traits"
            ));
        }
        let plan = match lower_union(&expr) {
            Some(alternatives) => Plan::Steps(alternatives),
            None => Plan::Tree,
        };
        Ok(FieldPath {
            plan,
            expr,
            pieces: Vec::new(),
        })
    }

    /// The first non-null match, in jsonpath-rw's order. The step walk allocates
    /// nothing.
    pub fn first<'a>(&self, root: &'a Value) -> Option<Found<'a>> {
        match &self.plan {
            Plan::Steps(alternatives) => alternatives
                .iter()
                .find_map(|steps| first_in(Cow::Borrowed(root), steps)),
            Plan::Tree => eval(&self.expr, root, &Datum::root(root))
                .into_iter()
                .find(|d| !d.value.is_null())
                .map(|d| d.value),
        }
    }

    /// Every non-null match with its path, in order (for plugins).
    pub fn find_all<'a>(&self, root: &'a Value) -> Vec<Match<'a>> {
        match &self.plan {
            Plan::Steps(alternatives) => {
                let mut out = Vec::new();
                let mut path = Vec::new();
                for steps in alternatives {
                    collect(Cow::Borrowed(root), steps, &mut path, &mut out);
                }
                out
            }
            Plan::Tree => eval(&self.expr, root, &Datum::root(root))
                .into_iter()
                .filter(|d| !d.value.is_null())
                .map(|d| (d.path(), d.value))
                .collect(),
        }
    }

    /// What a reader of the definition may not expect: a `|` that binds tighter
    /// than the `.` around it, and `..`. One sentence each, saying what the path
    /// means and how to write it plainly.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        self.expr.visit_nested(false, &mut |e, nested| match e {
            Expr::Union(..) if nested => notes.push(format!(
                "`|` binds tighter than `.` in jsonpath-rw, so this reads `{}`; to try \
                 one path and then the next, give fields a list: [{}]",
                self.expr,
                self.pieces.join(", ")
            )),
            Expr::Descendants(left, right) => notes.push(format!(
                "`{left}..{right}` matches `{right}` at any depth under `{left}` (depth \
                 first, in document order; a trait takes the first non-null one), \
                 and searches the whole of it for every notification"
            )),
            _ => {}
        });
        notes
    }

    /// Whether the fast step walk serves this path (for tests and benchmarks).
    pub fn is_plain(&self) -> bool {
        matches!(self.plan, Plan::Steps(_))
    }

    /// The same paths as RFC 9535 queries, one per union member, for a plain path
    /// (used to compare against `serde_json_path` in the benchmarks; `[*]` on a
    /// non-list and indexes on strings differ). `None` for other paths.
    pub fn to_rfc9535(&self) -> Option<Vec<String>> {
        let Plan::Steps(alternatives) = &self.plan else {
            return None;
        };
        fn quote(k: &str) -> String {
            let mut s = String::from("'");
            for c in k.chars() {
                match c {
                    '\'' => s.push_str("\\'"),
                    '\\' => s.push_str("\\\\"),
                    c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
                    c => s.push(c),
                }
            }
            s.push('\'');
            s
        }
        let slice = |v: &Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
        Some(
            alternatives
                .iter()
                .map(|steps| {
                    let mut q = String::from("$");
                    for step in steps {
                        match step {
                            Step::Key(k) => q.push_str(&format!("[{}]", quote(k))),
                            Step::Keys(ks) => {
                                let parts: Vec<String> = ks.iter().map(|k| quote(k)).collect();
                                q.push_str(&format!("[{}]", parts.join(",")));
                            }
                            Step::AllKeys | Step::Slice(None, None) => q.push_str("[*]"),
                            Step::Slice(a, b) => {
                                q.push_str(&format!("[{}:{}]", slice(a), slice(b)))
                            }
                            Step::Index(i) => q.push_str(&format!("[{i}]")),
                        }
                    }
                    q
                })
                .collect(),
        )
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

/// The text between the `|` of a specification that are outside parentheses and
/// brackets, trimmed.
fn top_level_pieces(spec: &str, tokens: &[(Tok, usize)]) -> Vec<String> {
    let chars: Vec<char> = spec.chars().collect();
    let mut pieces = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (tok, at) in tokens {
        match tok {
            Tok::LParen | Tok::LBracket => depth += 1,
            Tok::RParen | Tok::RBracket => depth -= 1,
            Tok::Pipe if depth == 0 => {
                pieces.push(
                    chars[start..*at]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_string(),
                );
                start = at + 1;
            }
            _ => {}
        }
    }
    pieces.push(chars[start..].iter().collect::<String>().trim().to_string());
    pieces
}

// ------------------------------------------------------------ lowering to steps

/// A top-level union of plain chains, as step lists; `None` when some part needs
/// the tree.
fn lower_union(e: &Expr) -> Option<Vec<Vec<Step>>> {
    match e {
        Expr::Union(a, b) => {
            let mut out = lower_union(a)?;
            out.extend(lower_union(b)?);
            Some(out)
        }
        other => {
            let mut steps = Vec::new();
            lower_chain(other, true, &mut steps)?;
            Some(vec![steps])
        }
    }
}

/// Appends the steps of a chain of keys, indexes and slices (`$` only at the start).
fn lower_chain(e: &Expr, at_start: bool, out: &mut Vec<Step>) -> Option<()> {
    match e {
        Expr::Child(a, b) => {
            lower_chain(a, at_start, out)?;
            lower_chain(b, false, out)
        }
        Expr::Root if at_start => Some(()),
        Expr::Fields(keys) if keys.iter().any(|k| k == "*") => {
            out.push(Step::AllKeys);
            Some(())
        }
        Expr::Fields(keys) if keys.len() == 1 => {
            out.push(Step::Key(keys[0].clone()));
            Some(())
        }
        Expr::Fields(keys) => {
            out.push(Step::Keys(keys.clone()));
            Some(())
        }
        Expr::Index(i) => {
            out.push(Step::Index(*i));
            Some(())
        }
        Expr::Slice(a, b) => {
            out.push(Step::Slice(*a, *b));
            Some(())
        }
        _ => None,
    }
}

// ------------------------------------------------------------ shared semantics

/// jsonpath-rw's `[n]`: a list element (negative from the end) or a character of a
/// string.
fn index<'a>(value: Found<'a>, i: i64) -> Option<Found<'a>> {
    match value {
        Cow::Borrowed(Value::Array(items)) => {
            items.get(position(items.len(), i)?).map(Cow::Borrowed)
        }
        Cow::Owned(Value::Array(mut items)) => {
            let at = position(items.len(), i)?;
            Some(Cow::Owned(items.swap_remove(at)))
        }
        ref v => {
            let s = v.as_str()?;
            let n = s.chars().count();
            let c = s.chars().nth(position(n, i)?)?;
            Some(Cow::Owned(Value::String(c.to_string())))
        }
    }
}

fn position(len: usize, i: i64) -> Option<usize> {
    if i >= 0 {
        usize::try_from(i).ok().filter(|&u| u < len)
    } else {
        len.checked_sub(usize::try_from(i.unsigned_abs()).ok()?)
    }
}

/// The positions a Python slice `[a:b]` takes from a sequence of `len`.
fn slice_range(len: usize, a: Option<i64>, b: Option<i64>) -> std::ops::Range<usize> {
    let clamp = |v: i64| -> usize {
        let len_i = i64::try_from(len).unwrap_or(i64::MAX);
        let v = if v < 0 {
            (v + len_i).max(0)
        } else {
            v.min(len_i)
        };
        usize::try_from(v).unwrap_or(0)
    };
    let start = a.map_or(0, clamp);
    let end = b.map_or(len, clamp);
    start..end.max(start)
}

/// jsonpath-rw's slice: a list's elements, or a value wrapped in a one-element list
/// (objects, strings, integers, booleans); floats and null match nothing.
fn slice_items<'a>(value: &Found<'a>, a: Option<i64>, b: Option<i64>) -> Vec<(usize, Found<'a>)> {
    let wrapped = match value.as_ref() {
        Value::Array(items) => {
            return slice_range(items.len(), a, b)
                .map(|i| {
                    let item = match value {
                        Cow::Borrowed(Value::Array(items)) => Cow::Borrowed(&items[i]),
                        _ => Cow::Owned(items[i].clone()),
                    };
                    (i, item)
                })
                .collect()
        }
        Value::Object(_) | Value::String(_) | Value::Bool(_) => true,
        Value::Number(n) => !n.is_f64(),
        Value::Null => false,
    };
    if wrapped && slice_range(1, a, b).contains(&0) {
        vec![(0, value.clone())]
    } else {
        Vec::new()
    }
}

/// An object's value under `key`, borrowed when the object is.
fn key<'a>(value: &Found<'a>, key: &str) -> Option<Found<'a>> {
    match value {
        Cow::Borrowed(v) => v.as_object()?.get(key).map(Cow::Borrowed),
        Cow::Owned(v) => v.as_object()?.get(key).cloned().map(Cow::Owned),
    }
}

/// An object's entries in document order, borrowed when the object is.
fn entries<'a>(value: &Found<'a>) -> Vec<(String, Found<'a>)> {
    match value {
        Cow::Borrowed(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), Cow::Borrowed(v)))
            .collect(),
        Cow::Owned(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), Cow::Owned(v.clone())))
            .collect(),
        _ => Vec::new(),
    }
}

// ------------------------------------------------------------ the step walk

fn first_in<'a>(value: Found<'a>, steps: &[Step]) -> Option<Found<'a>> {
    let Some((step, rest)) = steps.split_first() else {
        return (!value.is_null()).then_some(value);
    };
    match step {
        Step::Key(k) => first_in(key(&value, k)?, rest),
        Step::Keys(ks) => ks
            .iter()
            .find_map(|k| key(&value, k).and_then(|v| first_in(v, rest))),
        // The borrowed cases (all but a character of a string) allocate nothing.
        Step::AllKeys => match value {
            Cow::Borrowed(Value::Object(m)) => {
                m.values().find_map(|v| first_in(Cow::Borrowed(v), rest))
            }
            other => entries(&other)
                .into_iter()
                .find_map(|(_, v)| first_in(v, rest)),
        },
        Step::Index(i) => first_in(index(value, *i)?, rest),
        Step::Slice(a, b) => match value {
            Cow::Borrowed(Value::Array(items)) => items[slice_range(items.len(), *a, *b)]
                .iter()
                .find_map(|v| first_in(Cow::Borrowed(v), rest)),
            other => slice_items(&other, *a, *b)
                .into_iter()
                .find_map(|(_, v)| first_in(v, rest)),
        },
    }
}

fn collect<'a>(value: Found<'a>, steps: &[Step], path: &mut Vec<String>, out: &mut Vec<Match<'a>>) {
    let Some((step, rest)) = steps.split_first() else {
        if !value.is_null() {
            out.push((path.join("."), value));
        }
        return;
    };
    let mut descend = |label: String, v: Found<'a>, out: &mut Vec<Match<'a>>| {
        path.push(label);
        collect(v, rest, path, out);
        path.pop();
    };
    match step {
        Step::Key(k) => {
            if let Some(v) = key(&value, k) {
                descend(k.clone(), v, out);
            }
        }
        Step::Keys(ks) => {
            for k in ks {
                if let Some(v) = key(&value, k) {
                    descend(k.clone(), v, out);
                }
            }
        }
        Step::AllKeys => {
            for (k, v) in entries(&value) {
                descend(k, v, out);
            }
        }
        Step::Index(i) => {
            if let Some(v) = index(value, *i) {
                descend(format!("[{i}]"), v, out);
            }
        }
        Step::Slice(a, b) => {
            for (n, v) in slice_items(&value, *a, *b) {
                descend(format!("[{n}]"), v, out);
            }
        }
    }
}

// ------------------------------------------------------------ the tree walk

/// A value with the way to it: each step's label and the value it reached (the
/// last is this datum's), so `` `parent` `` and `$` can climb back.
#[derive(Clone)]
struct Datum<'a> {
    value: Found<'a>,
    trail: Vec<(String, Found<'a>)>,
    root: &'a Value,
}

impl<'a> Datum<'a> {
    fn root(root: &'a Value) -> Datum<'a> {
        Datum {
            value: Cow::Borrowed(root),
            trail: Vec::new(),
            root,
        }
    }

    fn child(&self, label: String, value: Found<'a>) -> Datum<'a> {
        let mut trail = self.trail.clone();
        trail.push((label, value.clone()));
        Datum {
            value,
            trail,
            root: self.root,
        }
    }

    fn path(&self) -> String {
        let labels: Vec<&str> = self.trail.iter().map(|(l, _)| l.as_str()).collect();
        labels.join(".")
    }

    /// The datum's children in document order (list items, then object entries).
    fn children(&self) -> Vec<Datum<'a>> {
        match self.value.as_ref() {
            Value::Array(_) => slice_items(&self.value, None, None)
                .into_iter()
                .map(|(i, v)| self.child(format!("[{i}]"), v))
                .collect(),
            Value::Object(_) => entries(&self.value)
                .into_iter()
                .map(|(k, v)| self.child(k, v))
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn eval<'a>(e: &Expr, root: &'a Value, d: &Datum<'a>) -> Vec<Datum<'a>> {
    match e {
        Expr::Root => vec![Datum::root(root)],
        Expr::This => vec![d.clone()],
        Expr::Parent => {
            let mut up = d.clone();
            if up.trail.pop().is_none() {
                return Vec::new(); // jsonpath-rw raised here
            }
            up.value = up
                .trail
                .last()
                .map_or(Cow::Borrowed(root), |(_, v)| v.clone());
            vec![up]
        }
        Expr::Fields(keys) => {
            if keys.iter().any(|k| k == "*") {
                entries(&d.value)
                    .into_iter()
                    .map(|(k, v)| d.child(k, v))
                    .collect()
            } else {
                keys.iter()
                    .filter_map(|k| key(&d.value, k).map(|v| d.child(k.clone(), v)))
                    .collect()
            }
        }
        Expr::Index(i) => index(d.value.clone(), *i)
            .map(|v| vec![d.child(format!("[{i}]"), v)])
            .unwrap_or_default(),
        Expr::Slice(a, b) => slice_items(&d.value, *a, *b)
            .into_iter()
            .map(|(n, v)| d.child(format!("[{n}]"), v))
            .collect(),
        Expr::Child(a, b) => eval(a, root, d)
            .iter()
            .flat_map(|m| eval(b, root, m))
            .collect(),
        Expr::Union(a, b) => {
            let mut out = eval(a, root, d);
            out.extend(eval(b, root, d));
            out
        }
        Expr::Where(a, b) => eval(a, root, d)
            .into_iter()
            .filter(|m| !eval(b, root, m).is_empty())
            .collect(),
        Expr::Descendants(a, b) => {
            fn below<'a>(b: &Expr, root: &'a Value, d: &Datum<'a>, out: &mut Vec<Datum<'a>>) {
                out.extend(eval(b, root, d));
                for c in d.children() {
                    below(b, root, &c, out);
                }
            }
            let mut out = Vec::new();
            for m in eval(a, root, d) {
                below(b, root, &m, &mut out);
            }
            out
        }
        // Refused when the path is compiled.
        Expr::Intersect(..) => Vec::new(),
    }
}

// ------------------------------------------------------------ the tree itself

impl Expr {
    /// The first node (pre-order) for which `pred` holds.
    fn find(&self, pred: &dyn Fn(&Expr) -> bool) -> Option<&Expr> {
        if pred(self) {
            return Some(self);
        }
        match self {
            Expr::Child(a, b)
            | Expr::Descendants(a, b)
            | Expr::Where(a, b)
            | Expr::Union(a, b)
            | Expr::Intersect(a, b) => a.find(pred).or_else(|| b.find(pred)),
            _ => None,
        }
    }

    /// Visits every node with whether it sits inside something other than a
    /// top-level union (where a `|` no longer separates whole paths).
    fn visit_nested(&self, nested: bool, f: &mut dyn FnMut(&Expr, bool)) {
        f(self, nested);
        match self {
            Expr::Union(a, b) => {
                a.visit_nested(nested, f);
                b.visit_nested(nested, f);
            }
            Expr::Child(a, b)
            | Expr::Descendants(a, b)
            | Expr::Where(a, b)
            | Expr::Intersect(a, b) => {
                a.visit_nested(true, f);
                b.visit_nested(true, f);
            }
            _ => {}
        }
    }

    /// Binding strength of a binary node (higher binds tighter); atoms bind tightest.
    fn strength(&self) -> u8 {
        match self {
            Expr::Descendants(..) => 1,
            Expr::Child(_, b) if !matches!(**b, Expr::Index(_) | Expr::Slice(..)) => 2,
            Expr::Union(..) => 3,
            Expr::Intersect(..) => 4,
            Expr::Where(..) => 5,
            _ => 6,
        }
    }
}

fn is_plain_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '@')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@' || c == '-')
        && s != "where"
}

/// Writes a path back in jsonpath-rw syntax, with parentheses wherever the
/// precedence decides the meaning, so messages show how it was read.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A union, `where` or `&` inside a path is bracketed even where the
        // precedence would not need it: that is the reading messages must show.
        let side = |f: &mut fmt::Formatter<'_>, e: &Expr, min: u8| {
            let hidden =
                min <= 3 && matches!(e, Expr::Union(..) | Expr::Where(..) | Expr::Intersect(..));
            if e.strength() < min || hidden {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        };
        let binary = |f: &mut fmt::Formatter<'_>, a: &Expr, op: &str, b: &Expr, s: u8| {
            side(f, a, s)?;
            f.write_str(op)?;
            side(f, b, s + 1)
        };
        match self {
            Expr::Root => f.write_str("$"),
            Expr::This => f.write_str("`this`"),
            Expr::Parent => f.write_str("`parent`"),
            Expr::Fields(keys) => {
                let shown: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        if is_plain_id(k) {
                            k.clone()
                        } else {
                            format!("'{}'", k.replace('\\', "\\\\").replace('\'', "\\'"))
                        }
                    })
                    .collect();
                f.write_str(&shown.join(","))
            }
            Expr::Index(i) => write!(f, "[{i}]"),
            Expr::Slice(None, None) => f.write_str("[*]"),
            Expr::Slice(a, b) => {
                let n = |v: &Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
                write!(f, "[{}:{}]", n(a), n(b))
            }
            Expr::Child(a, b) if matches!(**b, Expr::Index(_) | Expr::Slice(..)) => {
                side(f, a, 6)?;
                write!(f, "{b}")
            }
            Expr::Child(a, b) => binary(f, a, ".", b, 2),
            Expr::Descendants(a, b) => binary(f, a, "..", b, 1),
            Expr::Union(a, b) => {
                // Left-associative: a union on the left needs no brackets.
                if matches!(**a, Expr::Union(..)) {
                    write!(f, "{a}")?;
                } else {
                    side(f, a, 4)?;
                }
                f.write_str("|")?;
                side(f, b, 4)
            }
            Expr::Intersect(a, b) => binary(f, a, "&", b, 4),
            Expr::Where(a, b) => binary(f, a, " where ", b, 5),
        }
    }
}

// ------------------------------------------------------------ lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An identifier or a quoted key (both are field names in jsonpath-rw).
    Id(String),
    Num(i64),
    Named(String),
    Star,
    Dot,
    DoubleDot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Dollar,
    Comma,
    Colon,
    Pipe,
    Amp,
    Where,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Id(s) => format!("field '{s}'"),
            Tok::Num(n) => format!("number {n}"),
            Tok::Named(s) => format!("`{s}`"),
            Tok::Star => "'*'".into(),
            Tok::Dot => "'.'".into(),
            Tok::DoubleDot => "'..'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Dollar => "'$'".into(),
            Tok::Comma => "','".into(),
            Tok::Colon => "':'".into(),
            Tok::Pipe => "'|'".into(),
            Tok::Amp => "'&'".into(),
            Tok::Where => "'where'".into(),
        }
    }
}

fn is_id_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '@'
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '@' || c == '-'
}

/// Tokens with their character offsets.
fn lex(spec: &str) -> Result<Vec<(Tok, usize)>, String> {
    let chars: Vec<char> = spec.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let at = i;
        let c = chars[i];
        let single = match c {
            '*' => Some(Tok::Star),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '$' => Some(Tok::Dollar),
            ',' => Some(Tok::Comma),
            ':' => Some(Tok::Colon),
            '|' => Some(Tok::Pipe),
            '&' => Some(Tok::Amp),
            _ => None,
        };
        if let Some(tok) = single {
            toks.push((tok, at));
            i += 1;
            continue;
        }
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '.' if chars.get(i + 1) == Some(&'.') => {
                toks.push((Tok::DoubleDot, at));
                i += 2;
            }
            '.' => {
                toks.push((Tok::Dot, at));
                i += 1;
            }
            '\'' | '"' | '`' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(format!(
                                "unterminated {quote}quoted{quote} text starting at column {} of field path '{spec}'",
                                at + 1
                            ))
                        }
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(&e) => s.push(e),
                                None => {
                                    return Err(format!(
                                        "unterminated quoted text in field path '{spec}'"
                                    ))
                                }
                            }
                            i += 2;
                        }
                        Some(&q) if q == quote => {
                            i += 1;
                            break;
                        }
                        Some(&other) => {
                            s.push(other);
                            i += 1;
                        }
                    }
                }
                toks.push((
                    if quote == '`' {
                        Tok::Named(s)
                    } else {
                        Tok::Id(s)
                    },
                    at,
                ));
            }
            c if (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
                || c.is_ascii_digit() =>
            {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let text: String = chars[at..i].iter().collect();
                let n = text
                    .parse::<i64>()
                    .map_err(|_| format!("number '{text}' is too large in field path '{spec}'"))?;
                toks.push((Tok::Num(n), at));
            }
            c if is_id_start(c) => {
                while i < chars.len() && is_id_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[at..i].iter().collect();
                toks.push((
                    if word == "where" {
                        Tok::Where
                    } else {
                        Tok::Id(word)
                    },
                    at,
                ));
            }
            other => {
                return Err(format!(
                    "unexpected character '{other}' at column {} of field path '{spec}' \
                     (quote keys with special characters: 'key')",
                    at + 1
                ))
            }
        }
    }
    Ok(toks)
}

// ------------------------------------------------------------ parser

struct Parser {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
}

/// Binary operators: token, strength (higher binds tighter).
fn binary_op(t: &Tok) -> Option<u8> {
    match t {
        Tok::DoubleDot => Some(1),
        Tok::Dot => Some(2),
        Tok::Pipe => Some(3),
        Tok::Amp => Some(4),
        Tok::Where => Some(5),
        _ => None,
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn bump(&mut self) -> Option<Tok> {
        let t = self.peek().cloned();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn unexpected(&self, what: &str) -> String {
        match self.tokens.get(self.pos) {
            Some((t, at)) => format!(
                "expected {what}, found {} at column {}",
                t.describe(),
                at + 1
            ),
            None => format!("expected {what}, found the end of the path"),
        }
    }

    /// path := postfix { op path } by precedence climbing (left-associative).
    fn path(&mut self, min: u8) -> Result<Expr, String> {
        let mut left = self.postfix()?;
        while let Some(strength) = self.peek().and_then(binary_op).filter(|s| *s >= min) {
            let op = self.bump();
            let right = self.path(strength + 1)?;
            let (a, b) = (Box::new(left), Box::new(right));
            left = match op {
                Some(Tok::DoubleDot) => Expr::Descendants(a, b),
                Some(Tok::Dot) => Expr::Child(a, b),
                Some(Tok::Pipe) => Expr::Union(a, b),
                Some(Tok::Amp) => Expr::Intersect(a, b),
                _ => Expr::Where(a, b),
            };
        }
        Ok(left)
    }

    /// postfix := atom { '[' inner ']' }
    fn postfix(&mut self) -> Result<Expr, String> {
        let mut e = self.atom()?;
        while self.peek() == Some(&Tok::LBracket) {
            let inner = self.bracket()?;
            e = Expr::Child(Box::new(e), Box::new(inner));
        }
        Ok(e)
    }

    fn atom(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Tok::Star) => {
                self.pos += 1;
                Ok(Expr::Fields(vec!["*".to_string()]))
            }
            Some(Tok::Id(_)) => self.fields(),
            Some(Tok::Named(name)) => {
                let e = match name.as_str() {
                    "this" => Expr::This,
                    "parent" => Expr::Parent,
                    other => {
                        return Err(format!(
                        "unknown named operator `{other}` (jsonpath-rw knows `this` and `parent`)"
                    ))
                    }
                };
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Dollar) => {
                self.pos += 1;
                Ok(Expr::Root)
            }
            Some(Tok::LBracket) => self.bracket(),
            Some(Tok::LParen) => {
                self.pos += 1;
                let inner = self.path(0)?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(self.unexpected("')'"));
                }
                self.pos += 1;
                Ok(inner)
            }
            _ => Err(self.unexpected("a field name, '*', '$', '[', '(' or `this`")),
        }
    }

    /// fields := ID {',' ID}
    fn fields(&mut self) -> Result<Expr, String> {
        let mut keys = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::Id(k)) => {
                    keys.push(k.clone());
                    self.pos += 1;
                }
                _ => return Err(self.unexpected("a field name")),
            }
            if self.peek() != Some(&Tok::Comma) {
                return Ok(Expr::Fields(keys));
            }
            self.pos += 1;
        }
    }

    /// '[' (NUMBER | '*' | [NUMBER] ':' [NUMBER] | fields) ']'
    fn bracket(&mut self) -> Result<Expr, String> {
        self.pos += 1; // '['
        let e = match self.peek() {
            Some(Tok::Star) => {
                self.pos += 1;
                Expr::Slice(None, None)
            }
            Some(Tok::Id(_)) => self.fields()?,
            Some(Tok::Num(_)) | Some(Tok::Colon) => {
                let start = match self.peek() {
                    Some(Tok::Num(n)) => {
                        let n = *n;
                        self.pos += 1;
                        Some(n)
                    }
                    _ => None,
                };
                if self.peek() == Some(&Tok::Colon) {
                    self.pos += 1;
                    let end = match self.peek() {
                        Some(Tok::Num(n)) => {
                            let n = *n;
                            self.pos += 1;
                            Some(n)
                        }
                        _ => None,
                    };
                    Expr::Slice(start, end)
                } else {
                    Expr::Index(start.unwrap_or_default())
                }
            }
            _ => {
                return Err(
                    self.unexpected("an index, a slice (a:b), '*' or field names inside '[...]'")
                )
            }
        };
        if self.peek() != Some(&Tok::RBracket) {
            return Err(self.unexpected("']'"));
        }
        self.pos += 1;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "payload": {
                "a": {"b": 1},
                "n": null,
                "image_meta": {"org.openstack__1__architecture": "x64"},
                "ips": [{"address": "10.0.0.2"}, {"address": "10.0.0.3"}],
                "host": "compute-7"
            },
            "publisher_id": "compute.host"
        })
    }

    fn first(spec: &str, d: &Value) -> Option<Value> {
        FieldPath::parse(spec)
            .unwrap_or_else(|e| panic!("{spec}: {e}"))
            .first(d)
            .map(Cow::into_owned)
    }

    #[test]
    fn dialect() {
        let d = doc();
        let first = |s: &str| first(s, &d);
        assert_eq!(first("payload.a.b"), Some(json!(1)));
        assert_eq!(first("$.payload.a.b"), Some(json!(1)));
        assert_eq!(
            first("payload.image_meta.'org.openstack__1__architecture'"),
            Some(json!("x64"))
        );
        assert_eq!(
            first("payload.image_meta.\"org.openstack__1__architecture\""),
            Some(json!("x64"))
        );
        assert_eq!(first("payload[host]"), Some(json!("compute-7")));
        assert_eq!(first("payload['host']"), Some(json!("compute-7")));
        assert_eq!(first("payload.ips[1].address"), Some(json!("10.0.0.3")));
        assert_eq!(first("payload.ips[-1].address"), Some(json!("10.0.0.3")));
        assert_eq!(first("payload.ips[5].address"), None);
        assert_eq!(first("payload.ips[*].address"), Some(json!("10.0.0.2")));
        assert_eq!(first("payload.ips[1:].address"), Some(json!("10.0.0.3")));
        assert_eq!(first("payload.n"), None);
        assert_eq!(first("payload.a.b.c"), None);
        assert_eq!(first("payload.host.x"), None);
        assert_eq!(
            first("(payload.n)|(payload.host)"),
            Some(json!("compute-7"))
        );
        assert_eq!(first("payload.n,host"), Some(json!("compute-7")));
        assert_eq!(first("payload.host[*]"), Some(json!("compute-7")));
        assert_eq!(first("payload.host[0]"), Some(json!("c")));
        assert_eq!(first("payload.host[-1]"), Some(json!("7")));
        assert_eq!(first("payload..address"), Some(json!("10.0.0.2")));
        assert_eq!(
            first("payload.ips[*] where address"),
            Some(json!({"address": "10.0.0.2"}))
        );
        assert_eq!(first("payload.host.`parent`.a.b"), Some(json!(1)));
        assert_eq!(first("payload.$.publisher_id"), Some(json!("compute.host")));
    }

    #[test]
    fn plain_paths_take_the_step_walk() {
        for spec in [
            "payload.a.b",
            "$.a[0]",
            "(a.b)|(c)",
            "a[*].b",
            "a[1:2]",
            "a.*",
            "a,b.c",
        ] {
            assert!(FieldPath::parse(spec).unwrap().is_plain(), "{spec}");
        }
        for spec in [
            "a..b",
            "a.(b|c)",
            "a where b",
            "a.`parent`",
            "a.$.b",
            "`this`.a",
        ] {
            assert!(!FieldPath::parse(spec).unwrap().is_plain(), "{spec}");
        }
    }

    #[test]
    fn list_is_ordered_union() {
        let d = doc();
        let p =
            FieldPath::parse_list(&["payload.n", "payload.nope", "publisher_id", "payload.host"])
                .unwrap();
        assert_eq!(p.first(&d).as_deref(), Some(&json!("compute.host")));
        let all: Vec<(String, Value)> = p
            .find_all(&d)
            .into_iter()
            .map(|(p, v)| (p, v.into_owned()))
            .collect();
        assert_eq!(
            all,
            vec![
                ("publisher_id".to_string(), json!("compute.host")),
                ("payload.host".to_string(), json!("compute-7")),
            ]
        );
    }

    #[test]
    fn match_paths_like_jsonpath_rw() {
        let d = doc();
        let p = FieldPath::parse("payload.ips[*].address").unwrap();
        let paths: Vec<String> = p.find_all(&d).into_iter().map(|m| m.0).collect();
        assert_eq!(
            paths,
            vec!["payload.ips.[0].address", "payload.ips.[1].address"]
        );
        let p = FieldPath::parse("payload.image_meta.'org.openstack__1__architecture'").unwrap();
        assert_eq!(
            p.find_all(&d)[0].0,
            "payload.image_meta.org.openstack__1__architecture"
        );
    }

    #[test]
    fn precedence_is_jsonpath_rws() {
        let shown = |s: &str| FieldPath::parse(s).unwrap().to_string();
        assert_eq!(shown("payload.a|payload.b"), "payload.(a|payload).b");
        assert_eq!(shown("(payload.a)|(payload.b)"), "(payload.a)|(payload.b)");
        assert_eq!(shown("(a)|(b)|(c)"), "a|b|c");
        assert_eq!(shown("a..b.c"), "a..b.c");
        assert_eq!(shown("a.b where c.d"), "a.(b where c).d");
        assert_eq!(shown("a.b[0].c"), "a.b[0].c");
        assert_eq!(shown("a.'x.y'"), "a.'x.y'");
    }

    #[test]
    fn notes_name_the_traps() {
        let notes = |s: &str| FieldPath::parse(s).unwrap().notes();
        assert!(notes("payload.a.b").is_empty());
        assert!(notes("(payload.a)|(payload.b)").is_empty());
        let n = notes("payload.a|payload.b");
        assert_eq!(n.len(), 1);
        assert!(n[0].contains("payload.(a|payload).b"), "{n:?}");
        let n = notes("payload..address");
        assert_eq!(n.len(), 1);
        assert!(n[0].contains("any depth"), "{n:?}");
    }

    #[test]
    fn refused_with_the_reason() {
        for (bad, why) in [
            ("payload.a & payload.b", "never"),
            ("payload.`that`", "unknown named operator"),
            ("payload.", "end of the path"),
            ("payload[", "end of the path"),
            ("payload.'x", "unterminated"),
            ("payload.a b", "unexpected field 'b'"),
            ("payload.#", "unexpected character '#'"),
            ("payload.1", "found number 1"),
            ("", "end of the path"),
            ("payload[0,1]", "expected ']'"),
            ("payload[1:2:3]", "expected ']'"),
            ("..payload", "found '..'"),
            ("payload.bogus(", "unexpected '('"),
        ] {
            let err = FieldPath::parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn rfc9535_translation() {
        let p =
            FieldPath::parse_list(&["payload.image_meta.'a.b'", "payload.ips[*].address", "x[2]"])
                .unwrap();
        let queries = p.to_rfc9535().unwrap();
        assert_eq!(
            queries,
            vec![
                "$['payload']['image_meta']['a.b']",
                "$['payload']['ips'][*]['address']",
                "$['x'][2]"
            ]
        );
        for q in queries {
            serde_json_path::JsonPath::parse(&q).unwrap();
        }
    }
}
