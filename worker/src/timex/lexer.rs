//! Splits a timex expression into tokens.
//!
//! The token set is the original's: numbers, `+ - @ $ ( )`, identifiers, and the
//! reserved words `to` and the duration units. A unit word is always a unit, so
//! `$d` is not a variable, and identifiers run on over digits, so `2h30m` is the
//! number 2 followed by the identifier `h30m` (a syntax error), as before.
//! Offsets count characters, not bytes, so carets line up under the source text.

use super::duration::Unit;
use super::error::TimexError;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    Number(i64),
    Plus,
    Minus,
    At,
    Dollar,
    LParen,
    RParen,
    To,
    Unit(Unit),
    Ident(String),
    End,
}

impl TokenKind {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Number(n) => format!("number {n}"),
            TokenKind::Plus => "`+`".to_string(),
            TokenKind::Minus => "`-`".to_string(),
            TokenKind::At => "`@`".to_string(),
            TokenKind::Dollar => "`$`".to_string(),
            TokenKind::LParen => "`(`".to_string(),
            TokenKind::RParen => "`)`".to_string(),
            TokenKind::To => "`to`".to_string(),
            TokenKind::Unit(u) => format!("unit `{}`", u.suffix()),
            TokenKind::Ident(name) => format!("`{name}`"),
            TokenKind::End => "end of input".to_string(),
        }
    }
}

/// A token and the character offset where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub offset: usize,
}

/// Tokenizes `source`; the result always ends with a [`TokenKind::End`] token.
pub fn tokenize(source: &str) -> Result<Vec<Token>, TimexError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let simple = match c {
            ' ' | '\t' | '\n' | '\r' => {
                i += 1;
                continue;
            }
            '+' => Some(TokenKind::Plus),
            '-' => Some(TokenKind::Minus),
            '@' => Some(TokenKind::At),
            '$' => Some(TokenKind::Dollar),
            '(' => Some(TokenKind::LParen),
            ')' => Some(TokenKind::RParen),
            _ => None,
        };
        if let Some(kind) = simple {
            tokens.push(Token {
                kind,
                offset: start,
            });
            i += 1;
            continue;
        }
        if c.is_ascii_digit() {
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            let value = digits.parse::<i64>().map_err(|_| TimexError::Invalid {
                offset: start,
                message: format!("number {digits} is too large"),
            })?;
            tokens.push(Token {
                kind: TokenKind::Number(value),
                offset: start,
            });
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let kind = if word == "to" {
                TokenKind::To
            } else if let Some(unit) = Unit::from_word(&word) {
                TokenKind::Unit(unit)
            } else {
                TokenKind::Ident(word)
            };
            tokens.push(Token {
                kind,
                offset: start,
            });
            continue;
        }
        return Err(TimexError::UnexpectedCharacter {
            offset: start,
            found: c,
        });
    }
    tokens.push(Token {
        kind: TokenKind::End,
        offset: chars.len(),
    });
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<TokenKind> {
        tokenize(source)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn tokens_of_a_full_expression() {
        assert_eq!(
            kinds("($a to $b)+1d 2h@3"),
            vec![
                TokenKind::LParen,
                TokenKind::Dollar,
                TokenKind::Ident("a".into()),
                TokenKind::To,
                TokenKind::Dollar,
                TokenKind::Ident("b".into()),
                TokenKind::RParen,
                TokenKind::Plus,
                TokenKind::Number(1),
                TokenKind::Unit(Unit::Day),
                TokenKind::Number(2),
                TokenKind::Unit(Unit::Hour),
                TokenKind::At,
                TokenKind::Number(3),
                TokenKind::End,
            ]
        );
    }

    #[test]
    fn unit_spellings() {
        for (word, unit) in [
            ("us", Unit::Microsecond),
            ("s", Unit::Second),
            ("sec", Unit::Second),
            ("m", Unit::Minute),
            ("min", Unit::Minute),
            ("h", Unit::Hour),
            ("hr", Unit::Hour),
            ("d", Unit::Day),
            ("mo", Unit::Month),
            ("y", Unit::Year),
            ("yr", Unit::Year),
        ] {
            assert_eq!(kinds(word), vec![TokenKind::Unit(unit), TokenKind::End]);
        }
    }

    #[test]
    fn identifiers_swallow_digits() {
        assert_eq!(
            kinds("2h30m"),
            vec![
                TokenKind::Number(2),
                TokenKind::Ident("h30m".into()),
                TokenKind::End
            ]
        );
    }

    #[test]
    fn offsets_count_characters() {
        let tokens = tokenize("  $x\t+ 1d").unwrap();
        let offsets: Vec<usize> = tokens.iter().map(|t| t.offset).collect();
        assert_eq!(offsets, vec![2, 3, 5, 7, 8, 9]);
    }

    #[test]
    fn bad_characters_are_reported_with_their_offset() {
        assert_eq!(
            tokenize("$x + 1.5d"),
            Err(TimexError::UnexpectedCharacter {
                offset: 6,
                found: '.'
            })
        );
        assert_eq!(
            tokenize("é$x"),
            Err(TimexError::UnexpectedCharacter {
                offset: 0,
                found: 'é'
            })
        );
    }

    #[test]
    fn huge_numbers_are_errors() {
        assert!(matches!(
            tokenize("$x + 99999999999999999999d"),
            Err(TimexError::Invalid { offset: 5, .. })
        ));
    }
}
