//! Cloudmesh flow strings: `"a; b || c; d"`. `;` runs one after the other, `||` side by side
//! and binds tighter, parentheses group. Parsed into a tree that `g.flow(..)` builds.

/// A parsed flow string.
#[derive(Debug, PartialEq)]
pub enum FlowNode {
    Task(String),
    Sequence(Vec<FlowNode>),
    Parallel(Vec<FlowNode>),
}

/// A mistake in a flow string, with the column (in characters, from 1) it was found at.
#[derive(Debug)]
pub struct FlowSyntaxError {
    pub message: String,
    pub column: usize,
}

impl FlowSyntaxError {
    /// The message with the string and a caret under the column.
    pub fn explain(&self, spec: &str) -> String {
        format!("{} in the flow string\n    {spec}\n    {}^", self.message, " ".repeat(self.column.saturating_sub(1)))
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Name(String),
    Then,
    And,
    Open,
    Close,
}

fn tokens(spec: &str) -> Result<Vec<(Token, usize)>, FlowSyntaxError> {
    let chars: Vec<char> = spec.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let column = i + 1;
        match chars[i] {
            c if c.is_whitespace() => i += 1,
            ';' => {
                out.push((Token::Then, column));
                i += 1;
            }
            '(' => {
                out.push((Token::Open, column));
                i += 1;
            }
            ')' => {
                out.push((Token::Close, column));
                i += 1;
            }
            '|' if chars.get(i + 1) == Some(&'|') => {
                out.push((Token::And, column));
                i += 2;
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '.')) {
                    i += 1;
                }
                out.push((Token::Name(chars[start..i].iter().collect()), column));
            }
            // `a | b` is a shell pipe to the eye, but flows only know `||`.
            '|' => return Err(FlowSyntaxError { message: "unexpected `|` (did you mean `||`?)".into(), column }),
            c => return Err(FlowSyntaxError { message: format!("unexpected `{c}`"), column }),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn column(&self) -> usize {
        self.tokens.get(self.at).map(|(_, c)| *c).unwrap_or(self.end)
    }

    fn sequence(&mut self) -> Result<FlowNode, FlowSyntaxError> {
        self.joined(Token::Then, Self::parallel, FlowNode::Sequence)
    }

    fn parallel(&mut self) -> Result<FlowNode, FlowSyntaxError> {
        self.joined(Token::And, Self::atom, FlowNode::Parallel)
    }

    /// `item (separator item)*`: one item alone is itself, several are `wrap`ped.
    fn joined(
        &mut self,
        separator: Token,
        item: fn(&mut Self) -> Result<FlowNode, FlowSyntaxError>,
        wrap: fn(Vec<FlowNode>) -> FlowNode,
    ) -> Result<FlowNode, FlowSyntaxError> {
        let mut items = vec![item(self)?];
        while self.tokens.get(self.at).is_some_and(|(t, _)| *t == separator) {
            self.at += 1;
            items.push(item(self)?);
        }
        Ok(if items.len() == 1 { items.pop().expect("one item") } else { wrap(items) })
    }

    fn atom(&mut self) -> Result<FlowNode, FlowSyntaxError> {
        let column = self.column();
        match self.tokens.get(self.at) {
            Some((Token::Name(name), _)) => {
                let name = name.clone();
                self.at += 1;
                Ok(FlowNode::Task(name))
            }
            Some((Token::Open, _)) => {
                self.at += 1;
                let inner = self.sequence()?;
                match self.tokens.get(self.at) {
                    Some((Token::Close, _)) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => Err(FlowSyntaxError { message: "`(` is never closed".into(), column }),
                }
            }
            Some((token, _)) => {
                let what = match token {
                    Token::Then => "`;`",
                    Token::And => "`||`",
                    Token::Close => "`)`",
                    _ => "this",
                };
                Err(FlowSyntaxError { message: format!("expected a task name or `(`, found {what}"), column })
            }
            None => Err(FlowSyntaxError { message: "expected a task name or `(`, found the end".into(), column }),
        }
    }
}

/// Parses a flow string.
pub fn parse(spec: &str) -> Result<FlowNode, FlowSyntaxError> {
    let tokens = tokens(spec)?;
    let end = spec.chars().count() + 1;
    let mut parser = Parser { tokens, at: 0, end };
    let node = parser.sequence()?;
    if parser.at < parser.tokens.len() {
        let column = parser.column();
        return Err(FlowSyntaxError { message: "unexpected text after a complete flow".into(), column });
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use FlowNode::*;

    fn t(name: &str) -> FlowNode {
        Task(name.into())
    }

    #[test]
    fn parallel_binds_tighter_than_sequence() {
        assert_eq!(parse("a; b || c; d").unwrap(), Sequence(vec![t("a"), Parallel(vec![t("b"), t("c")]), t("d")]));
    }

    #[test]
    fn parentheses_group() {
        assert_eq!(parse("(a; b) || c").unwrap(), Parallel(vec![Sequence(vec![t("a"), t("b")]), t("c")]));
    }

    #[test]
    fn mistakes_say_where() {
        let e = parse("a; || b").unwrap_err();
        assert_eq!(e.column, 4);
        assert!(e.explain("a; || b").ends_with("    a; || b\n       ^"), "{}", e.explain("a; || b"));
        assert_eq!(parse("(a; b").unwrap_err().message, "`(` is never closed");
        assert_eq!(parse("a | b").unwrap_err().column, 3);
        assert_eq!(parse("a; b | c").unwrap_err().message, "unexpected `|` (did you mean `||`?)");
        assert!(parse("").is_err());
    }
}
