//! The syntax tree of a timex expression and the parser that builds it.
//!
//! Grammar (operators are left-associative; `to` binds loosest):
//!
//! ```text
//! expression := chain [ "to" chain ]
//! chain      := primary { ("+" | "-" | "@") duration }
//! primary    := "$" NAME | RANGE [ "(" expression ")" ] | "(" expression ")"
//! duration   := NUMBER [unit] { NUMBER [unit] }
//! RANGE      := hour | day | month | year
//! ```
//!
//! Whether a node is a timestamp or a range is known from its shape, so the rules
//! the original enforced in its grammar are checked here, where the error can point
//! at the text: `to` joins two timestamps, a range function takes a timestamp, and
//! a bare number applies only directly to a range (`day @ 2`, `($a to $b) - 1`,
//! never `(day + 1h) @ 2`, which the original refused too). A range function
//! other than the four known ones parses, as it did in the original, and fails
//! when evaluated; [`Node::unknown_range`] lets loaders refuse it up front.

use super::duration::{Duration, Unit};
use super::error::TimexError;
use super::lexer::{tokenize, Token, TokenKind};

/// An operation applying a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `+`
    Add,
    /// `-`
    Subtract,
    /// `@`: replace the named components.
    Replace,
}

/// A node of the syntax tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `$name`
    Variable(String),
    /// `begin to end`, both timestamps.
    Span { begin: Box<Node>, end: Box<Node> },
    /// `day($x)`: the `unit` containing the timestamp `at` (`$timestamp` by default).
    Pinned { unit: Unit, at: Box<Node> },
    /// `name($x)` with a name that is not a range function: an error when evaluated.
    UnknownRange {
        name: String,
        /// 0-based character offset of the name.
        offset: usize,
        at: Box<Node>,
    },
    /// `operand + duration`, `operand - duration`, `operand @ duration`.
    Apply {
        op: Op,
        operand: Box<Node>,
        duration: Duration,
    },
}

/// The variable a range function uses when given no argument.
pub const DEFAULT_VARIABLE: &str = "timestamp";

impl Node {
    /// True when the node evaluates to a range, false for a timestamp.
    pub fn is_range(&self) -> bool {
        match self {
            Node::Variable(_) => false,
            Node::Span { .. } | Node::Pinned { .. } | Node::UnknownRange { .. } => true,
            Node::Apply { operand, .. } => operand.is_range(),
        }
    }

    /// Adds the variables this node uses to `out`, first appearance first.
    pub fn collect_variables(&self, out: &mut Vec<String>) {
        match self {
            Node::Variable(name) => {
                if !out.iter().any(|n| n == name) {
                    out.push(name.clone());
                }
            }
            Node::Span { begin, end } => {
                begin.collect_variables(out);
                end.collect_variables(out);
            }
            Node::Pinned { at, .. } | Node::UnknownRange { at, .. } => at.collect_variables(out),
            Node::Apply { operand, .. } => operand.collect_variables(out),
        }
    }

    /// The first range function that is not hour, day, month or year, as the
    /// compile-time error that names it.
    pub fn unknown_range(&self) -> Option<TimexError> {
        match self {
            Node::Variable(_) => None,
            Node::UnknownRange { name, offset, .. } => Some(invalid(
                *offset,
                format!("unknown range `{name}`; expected hour, day, month or year"),
            )),
            Node::Span { begin, end } => begin.unknown_range().or_else(|| end.unknown_range()),
            Node::Pinned { at, .. } => at.unknown_range(),
            Node::Apply { operand, .. } => operand.unknown_range(),
        }
    }

    /// A range made by a range function or `to` itself (parentheses aside): the
    /// only operand a bare number may apply to.
    fn is_range_itself(&self) -> bool {
        matches!(
            self,
            Node::Span { .. } | Node::Pinned { .. } | Node::UnknownRange { .. }
        )
    }
}

/// Parses a whole expression.
pub fn parse(source: &str) -> Result<Node, TimexError> {
    let mut parser = Parser {
        tokens: tokenize(source)?,
        pos: 0,
    };
    let node = parser.expression()?;
    let token = parser.peek();
    if token.kind != TokenKind::End {
        return Err(syntax(
            token,
            if node.is_range() {
                "`+`, `-`, `@` or end of input"
            } else {
                "`+`, `-`, `@`, `to` or end of input"
            },
        ));
    }
    Ok(node)
}

fn syntax(token: &Token, expected: &str) -> TimexError {
    TimexError::Syntax {
        offset: token.offset,
        expected: expected.to_string(),
        found: token.kind.describe(),
    }
}

fn invalid(offset: usize, message: impl Into<String>) -> TimexError {
    TimexError::Invalid {
        offset,
        message: message.into(),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // The lexer always ends the list with `End`, and `advance` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != TokenKind::End {
            self.pos += 1;
        }
        token
    }

    fn expression(&mut self) -> Result<Node, TimexError> {
        let begin = self.chain()?;
        if self.peek().kind != TokenKind::To {
            return Ok(begin);
        }
        let to = self.advance();
        if begin.is_range() {
            return Err(invalid(
                to.offset,
                "`to` needs a timestamp on its left, but this is a range",
            ));
        }
        let end_offset = self.peek().offset;
        let end = self.chain()?;
        if end.is_range() {
            return Err(invalid(
                end_offset,
                "`to` needs a timestamp on its right, but this is a range",
            ));
        }
        if self.peek().kind == TokenKind::To {
            return Err(invalid(
                self.peek().offset,
                "`to` needs a timestamp on its left, but this is a range",
            ));
        }
        Ok(Node::Span {
            begin: Box::new(begin),
            end: Box::new(end),
        })
    }

    fn chain(&mut self) -> Result<Node, TimexError> {
        let mut node = self.primary()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Plus => Op::Add,
                TokenKind::Minus => Op::Subtract,
                TokenKind::At => Op::Replace,
                _ => return Ok(node),
            };
            self.advance();
            let (duration, bare_number_offset) = self.duration()?;
            if let Some(offset) = bare_number_offset {
                if !node.is_range_itself() {
                    return Err(invalid(
                        offset,
                        if node.is_range() {
                            "a number without a unit applies only directly to a range \
                             function or `to` (`day @ 2`), not after `+`, `-` or `@`; give \
                             it a unit (us, s, m, h, d, mo, y)"
                        } else {
                            "a number without a unit only applies to a range; give it a \
                             unit (us, s, m, h, d, mo, y)"
                        },
                    ));
                }
            }
            node = Node::Apply {
                op,
                operand: Box::new(node),
                duration,
            };
        }
    }

    /// Parses `NUMBER [unit]` items; also returns where the first bare number is.
    fn duration(&mut self) -> Result<(Duration, Option<usize>), TimexError> {
        if !matches!(self.peek().kind, TokenKind::Number(_)) {
            return Err(syntax(self.peek(), "a duration such as `1d` or `2h 30m`"));
        }
        let mut total = Duration::default();
        let mut bare = None;
        while let TokenKind::Number(count) = self.peek().kind {
            let number = self.advance();
            let item = if let TokenKind::Unit(unit) = self.peek().kind {
                self.advance();
                Duration::of(unit, count)
            } else if let TokenKind::Ident(_) = self.peek().kind {
                return Err(syntax(
                    self.peek(),
                    "a unit (y, mo, d, h, m, s, us, or yr, hr, min, sec)",
                ));
            } else {
                bare.get_or_insert(number.offset);
                Duration::unitless(count)
            };
            total = total
                .checked_add(&item)
                .ok_or_else(|| invalid(number.offset, "duration is too large"))?;
        }
        Ok((total, bare))
    }

    fn primary(&mut self) -> Result<Node, TimexError> {
        let token = self.advance();
        match token.kind {
            TokenKind::Dollar => {
                let name = self.advance();
                match name.kind {
                    TokenKind::Ident(name) => Ok(Node::Variable(name)),
                    _ => Err(syntax(&name, "a variable name after `$`")),
                }
            }
            TokenKind::Ident(name) => {
                let unit = match name.as_str() {
                    "hour" => Some(Unit::Hour),
                    "day" => Some(Unit::Day),
                    "month" => Some(Unit::Month),
                    "year" => Some(Unit::Year),
                    _ => None,
                };
                let at = if self.peek().kind == TokenKind::LParen {
                    self.advance();
                    let arg_offset = self.peek().offset;
                    let at = self.expression()?;
                    if at.is_range() {
                        return Err(invalid(
                            arg_offset,
                            format!("`{name}(...)` needs a timestamp, but this is a range"),
                        ));
                    }
                    self.expect_close()?;
                    at
                } else {
                    Node::Variable(DEFAULT_VARIABLE.to_string())
                };
                Ok(match unit {
                    Some(unit) => Node::Pinned {
                        unit,
                        at: Box::new(at),
                    },
                    None => Node::UnknownRange {
                        name,
                        offset: token.offset,
                        at: Box::new(at),
                    },
                })
            }
            TokenKind::LParen => {
                let inner = self.expression()?;
                self.expect_close()?;
                Ok(inner)
            }
            _ => Err(syntax(
                &token,
                "a variable (`$name`), hour, day, month, year or `(`",
            )),
        }
    }

    fn expect_close(&mut self) -> Result<(), TimexError> {
        let token = self.advance();
        if token.kind == TokenKind::RParen {
            Ok(())
        } else {
            Err(syntax(&token, "`)`"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str) -> Box<Node> {
        Box::new(Node::Variable(name.to_string()))
    }

    fn offset_of(source: &str) -> usize {
        parse(source).unwrap_err().offset().unwrap()
    }

    #[test]
    fn to_binds_loosest() {
        assert_eq!(
            parse("$a - 1h to $b + 1h").unwrap(),
            Node::Span {
                begin: Box::new(Node::Apply {
                    op: Op::Subtract,
                    operand: var("a"),
                    duration: Duration::of(Unit::Hour, 1),
                }),
                end: Box::new(Node::Apply {
                    op: Op::Add,
                    operand: var("b"),
                    duration: Duration::of(Unit::Hour, 1),
                }),
            }
        );
    }

    #[test]
    fn juxtaposed_durations_add_up() {
        let expected = Duration::of(Unit::Day, 1)
            .checked_add(&Duration::of(Unit::Hour, 2))
            .unwrap();
        assert_eq!(
            parse("$a + 1d 2h").unwrap(),
            Node::Apply {
                op: Op::Add,
                operand: var("a"),
                duration: expected,
            }
        );
    }

    #[test]
    fn range_functions_default_to_timestamp() {
        assert_eq!(
            parse("day").unwrap(),
            Node::Pinned {
                unit: Unit::Day,
                at: var("timestamp"),
            }
        );
        assert_eq!(
            parse("(month($x + 1d))").unwrap(),
            Node::Pinned {
                unit: Unit::Month,
                at: Box::new(Node::Apply {
                    op: Op::Add,
                    operand: var("x"),
                    duration: Duration::of(Unit::Day, 1),
                }),
            }
        );
    }

    #[test]
    fn bare_numbers_need_a_range() {
        assert!(parse("day @ 2").is_ok());
        assert!(parse("($a to $b) + 1h 2").is_ok());
        assert!(
            parse("day + 1h @ 2").is_err(),
            "the original refused it too"
        );
        assert_eq!(offset_of("$a @ 2"), 5);
        assert_eq!(offset_of("$a + 1h 2"), 8);
    }

    #[test]
    fn to_joins_timestamps_only() {
        assert_eq!(offset_of("day to $a"), 4);
        assert_eq!(offset_of("$a to day"), 6);
        assert_eq!(offset_of("$a to $b to $c"), 9);
        assert_eq!(offset_of("day(day)"), 4);
        assert_eq!(offset_of("day($a to $b)"), 4);
    }

    #[test]
    fn syntax_errors_point_at_the_problem() {
        assert_eq!(offset_of("$timestamp +"), 12);
        assert_eq!(offset_of("$timestamp + 1x"), 14);
        assert_eq!(offset_of("$timestamp ++ 1d"), 12);
        assert_eq!(offset_of("$"), 1);
        assert_eq!(offset_of("$d"), 1);
        assert_eq!(offset_of("day("), 4);
        assert_eq!(offset_of("(day"), 4);
        assert_eq!(offset_of("1d"), 0);
        assert_eq!(offset_of(""), 0);
        let week = parse("week($a)").unwrap();
        assert_eq!(week.unknown_range().and_then(|e| e.offset()), Some(0));
        assert_eq!(offset_of("$a $b"), 3);
        assert_eq!(offset_of("$a + d"), 5);
        assert_eq!(offset_of("day)"), 3);
    }

    #[test]
    fn syntax_error_message() {
        assert_eq!(
            parse("$timestamp +").unwrap_err().to_string(),
            "syntax error at column 13: expected a duration such as `1d` or `2h 30m`, \
             found end of input"
        );
    }

    #[test]
    fn variables_in_order_of_appearance() {
        let mut names = Vec::new();
        parse("day($b) + 1h").unwrap().collect_variables(&mut names);
        parse("$a to $b").unwrap().collect_variables(&mut names);
        assert_eq!(names, vec!["b".to_string(), "a".to_string()]);
    }
}
