//! The arithmetic itself: a lexer that also reads the words people say ("17 times 23",
//! "15 percent of 80", "square root of 2"), a recursive-descent parser with a depth limit,
//! and results checked at every step (a division by zero, `sqrt(-1)`, `10^400` are
//! errors, never `inf`, `NaN` or a panic). Nothing here allocates more than the
//! expression's length or loops more than its tokens.

/// Longest expression accepted, in characters.
pub const MAX_CHARS: usize = 200;
/// Deepest nesting of parentheses, functions and signs.
pub const MAX_DEPTH: usize = 24;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalcError {
    #[error("the expression is empty")]
    Empty,
    #[error("the expression is longer than {MAX_CHARS} characters")]
    TooLong,
    #[error("the expression nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("unknown name '{0}' (known: sqrt, round, abs, pi, e and + - * / ^ % of)")]
    UnknownName(String),
    #[error("unexpected '{0}'")]
    Unexpected(String),
    #[error("the expression ends too early: a number is missing")]
    Incomplete,
    #[error("a ')' is missing")]
    Unclosed,
    #[error("division by zero has no answer")]
    DivisionByZero,
    #[error("'of' follows a percentage, like 15% of 80")]
    StrayOf,
    #[error("{0} is not a real number")]
    NotReal(&'static str),
    #[error("the result is too large")]
    Overflow,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Sqrt,
    Round,
    Abs,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Num(f64),
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// `%`: a percentage after a number, or the remainder between two.
    Percent,
    /// `mod`, `modulo`: always the remainder.
    Mod,
    Of,
    Open,
    Close,
    Func(Func),
}

impl Token {
    fn shown(self) -> String {
        match self {
            Token::Num(n) => super::format_number(n),
            Token::Add => "+".into(),
            Token::Sub => "-".into(),
            Token::Mul => "*".into(),
            Token::Div => "/".into(),
            Token::Pow => "^".into(),
            Token::Percent => "%".into(),
            Token::Mod => "mod".into(),
            Token::Of => "of".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Func(Func::Sqrt) => "sqrt".into(),
            Token::Func(Func::Round) => "round".into(),
            Token::Func(Func::Abs) => "abs".into(),
        }
    }

    /// Whether an operand can start with it (what tells `10 % 3` from `10% of`).
    fn starts_operand(self) -> bool {
        matches!(self, Token::Num(_) | Token::Open | Token::Func(_))
    }
}

/// Words that carry no arithmetic: "what is 2 plus 2", "calculate 3 * 4, please".
const FILLER: &[&str] = &[
    "what",
    "whats",
    "s",
    "is",
    "calculate",
    "compute",
    "the",
    "please",
    "equals",
    "equal",
    "to",
    "how",
    "much",
];

/// Evaluates `expression`.
pub fn evaluate(expression: &str) -> Result<f64, CalcError> {
    if expression.chars().count() > MAX_CHARS {
        return Err(CalcError::TooLong);
    }
    let tokens = lex(expression)?;
    if tokens.is_empty() {
        return Err(CalcError::Empty);
    }
    let mut parser = Parser { tokens, at: 0, depth: 0 };
    let value = parser.expression()?;
    match parser.peek() {
        None => Ok(if value == 0.0 { 0.0 } else { value }),
        Some(Token::Close) => Err(CalcError::Unexpected(")".into())),
        Some(t) => Err(CalcError::Unexpected(t.shown())),
    }
}

fn lex(text: &str) -> Result<Vec<Token>, CalcError> {
    let text = text.to_lowercase();
    let chars: Vec<char> = text.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut tokens = Vec::new();
    let mut i = 0;
    // Words are gathered first and read as phrases ("divided by") when a symbol or number
    // ends them.
    let flush = |words: &mut Vec<String>, tokens: &mut Vec<Token>| -> Result<(), CalcError> {
        read_words(std::mem::take(words), tokens)
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            flush(&mut words, &mut tokens)?;
            let (n, next) = number(&chars, i)?;
            tokens.push(Token::Num(n));
            i = next;
            continue;
        }
        if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            words.push(chars[start..i].iter().collect());
            continue;
        }
        let symbol = match c {
            '+' => Some(Token::Add),
            '-' | '−' | '–' => Some(Token::Sub),
            '*' | '×' | '·' => Some(Token::Mul),
            '/' | '÷' => Some(Token::Div),
            '^' => Some(Token::Pow),
            '%' => Some(Token::Percent),
            '(' | '[' => Some(Token::Open),
            ')' | ']' => Some(Token::Close),
            // Punctuation around the sum: "what's 3 * 4, please?"
            c if c.is_whitespace() || matches!(c, '?' | '=' | '\'' | '’' | '!' | ':' | ',') => None,
            other => return Err(CalcError::Unexpected(other.to_string())),
        };
        if let Some(mut token) = symbol {
            flush(&mut words, &mut tokens)?;
            // `**` is a power, as in many programming languages.
            if token == Token::Mul && chars.get(i + 1) == Some(&'*') {
                token = Token::Pow;
                i += 1;
            }
            tokens.push(token);
        }
        i += 1;
    }
    flush(&mut words, &mut tokens)?;
    Ok(tokens)
}

/// A number at `chars[i]`: digits with `,` between groups of three ("1,250.5"), a decimal
/// point, and an exponent ("2.5e3"). Returns it and where it ends.
fn number(chars: &[char], mut i: usize) -> Result<(f64, usize), CalcError> {
    let mut digits = String::new();
    let digit = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || c == '.' {
            digits.push(c);
        } else if c == ',' && (1..=3).all(|k| digit(i + k)) && !digit(i + 4) && !digits.contains('.') {
            // A thousands separator: nothing to keep.
        } else if c == 'e' && (digit(i + 1) || (matches!(chars.get(i + 1), Some('+' | '-')) && digit(i + 2)))
        {
            digits.push('e');
            i += 1;
            digits.push(chars[i]);
        } else {
            break;
        }
        i += 1;
    }
    let value: f64 = digits.parse().map_err(|_| CalcError::Unexpected(digits.clone()))?;
    if !value.is_finite() {
        return Err(CalcError::Overflow);
    }
    Ok((value, i))
}

/// Words as tokens: phrases first ("divided by", "to the power of", "square root of").
fn read_words(words: Vec<String>, tokens: &mut Vec<Token>) -> Result<(), CalcError> {
    let mut i = 0;
    let at = |i: usize, phrase: &[&str]| {
        phrase.iter().enumerate().all(|(k, w)| words.get(i + k).map(String::as_str) == Some(*w))
    };
    while i < words.len() {
        const PHRASES: &[(&[&str], &[Token])] = &[
            (&["to", "the", "power", "of"], &[Token::Pow]),
            (&["to", "the", "power"], &[Token::Pow]),
            (&["raised", "to", "the", "power", "of"], &[Token::Pow]),
            (&["raised", "to"], &[Token::Pow]),
            (&["square", "root", "of"], &[Token::Func(Func::Sqrt)]),
            (&["square", "root"], &[Token::Func(Func::Sqrt)]),
            (&["absolute", "value", "of"], &[Token::Func(Func::Abs)]),
            (&["divided", "by"], &[Token::Div]),
            (&["multiplied", "by"], &[Token::Mul]),
            (&["per", "cent"], &[Token::Percent]),
        ];
        if let Some((phrase, said)) = PHRASES.iter().find(|(phrase, _)| at(i, phrase)) {
            tokens.extend_from_slice(said);
            i += phrase.len();
            continue;
        }
        let word = words[i].as_str();
        match word {
            "plus" | "add" | "and" => tokens.push(Token::Add),
            "minus" | "subtract" | "less" => tokens.push(Token::Sub),
            "times" | "x" | "multiply" => tokens.push(Token::Mul),
            "over" | "divide" => tokens.push(Token::Div),
            "mod" | "modulo" => tokens.push(Token::Mod),
            "percent" | "pct" => tokens.push(Token::Percent),
            "of" => tokens.push(Token::Of),
            "squared" => tokens.extend([Token::Pow, Token::Num(2.0)]),
            "cubed" => tokens.extend([Token::Pow, Token::Num(3.0)]),
            "sqrt" | "root" => tokens.push(Token::Func(Func::Sqrt)),
            "round" | "rounded" => tokens.push(Token::Func(Func::Round)),
            "abs" => tokens.push(Token::Func(Func::Abs)),
            "pi" | "π" => tokens.push(Token::Num(std::f64::consts::PI)),
            "e" => tokens.push(Token::Num(std::f64::consts::E)),
            w if FILLER.contains(&w) => {}
            other => return Err(CalcError::UnknownName(other.to_string())),
        }
        i += 1;
    }
    Ok(())
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

/// A checked result: infinite or NaN values never travel on.
fn finite(value: f64) -> Result<f64, CalcError> {
    match value {
        v if v.is_nan() => Err(CalcError::NotReal("the result")),
        v if v.is_infinite() => Err(CalcError::Overflow),
        v => Ok(v),
    }
}

impl Parser {
    fn peek(&self) -> Option<Token> {
        self.tokens.get(self.at).copied()
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.peek();
        self.at += 1;
        token
    }

    fn deeper(&mut self) -> Result<(), CalcError> {
        self.depth += 1;
        match self.depth > MAX_DEPTH {
            true => Err(CalcError::TooDeep),
            false => Ok(()),
        }
    }

    /// term (('+' | '-') term)*
    fn expression(&mut self) -> Result<f64, CalcError> {
        let mut value = self.term()?.0;
        while let Some(op @ (Token::Add | Token::Sub)) = self.peek() {
            self.at += 1;
            let right = self.term()?.0;
            value = finite(if op == Token::Add { value + right } else { value - right })?;
        }
        Ok(value)
    }

    /// unary (('*' | '/' | '%' | 'mod' | 'of') unary)*; the flag says whether the last
    /// operand was a percentage (which 'of' needs).
    fn term(&mut self) -> Result<(f64, bool), CalcError> {
        let (mut value, mut percent) = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(op @ (Token::Mul | Token::Div | Token::Percent | Token::Mod | Token::Of)) => op,
                _ => return Ok((value, percent)),
            };
            if op == Token::Of && !percent {
                return Err(CalcError::StrayOf);
            }
            self.at += 1;
            let (right, right_percent) = self.unary()?;
            value = match op {
                Token::Mul | Token::Of => value * right,
                Token::Div if right == 0.0 => return Err(CalcError::DivisionByZero),
                Token::Div => value / right,
                _ if right == 0.0 => return Err(CalcError::DivisionByZero),
                _ => value % right,
            };
            value = finite(value)?;
            percent = right_percent;
        }
    }

    /// ('-' | '+') unary | power: `-2^2` is -4, as written in mathematics.
    fn unary(&mut self) -> Result<(f64, bool), CalcError> {
        match self.peek() {
            Some(sign @ (Token::Sub | Token::Add)) => {
                self.at += 1;
                self.deeper()?;
                let (value, percent) = self.unary()?;
                self.depth -= 1;
                Ok((if sign == Token::Sub { -value } else { value }, percent))
            }
            _ => self.power(),
        }
    }

    /// postfix ('^' unary)?, right to left: 2^3^2 is 2^9.
    fn power(&mut self) -> Result<(f64, bool), CalcError> {
        let (base, percent) = self.postfix()?;
        if self.peek() != Some(Token::Pow) {
            return Ok((base, percent));
        }
        self.at += 1;
        self.deeper()?;
        let (exponent, _) = self.unary()?;
        self.depth -= 1;
        if base == 0.0 && exponent < 0.0 {
            return Err(CalcError::DivisionByZero);
        }
        // powf is constant time whatever the exponent; too large is infinite, caught here.
        Ok((finite(base.powf(exponent))?, false))
    }

    /// primary ('%')*: a '%' not followed by an operand makes a percentage.
    fn postfix(&mut self) -> Result<(f64, bool), CalcError> {
        let mut value = self.primary()?;
        let mut percent = false;
        while self.peek() == Some(Token::Percent)
            && !self.tokens.get(self.at + 1).is_some_and(|t| t.starts_operand())
        {
            self.at += 1;
            value /= 100.0;
            percent = true;
        }
        Ok((value, percent))
    }

    /// A number, `( expression )`, or a function of one.
    fn primary(&mut self) -> Result<f64, CalcError> {
        match self.next() {
            Some(Token::Num(n)) => Ok(n),
            Some(Token::Open) => {
                self.deeper()?;
                let value = self.expression()?;
                if self.next() != Some(Token::Close) {
                    return Err(CalcError::Unclosed);
                }
                self.depth -= 1;
                Ok(value)
            }
            Some(Token::Func(f)) => {
                self.deeper()?;
                // "sqrt 16" and "sqrt(16)" alike; "sqrt 16 + 9" is sqrt(16) + 9.
                let (x, _) = self.power()?;
                self.depth -= 1;
                match f {
                    Func::Sqrt if x < 0.0 => Err(CalcError::NotReal("the square root of a negative number")),
                    Func::Sqrt => Ok(x.sqrt()),
                    Func::Round => Ok(x.round()),
                    Func::Abs => Ok(x.abs()),
                }
            }
            Some(t) => Err(CalcError::Unexpected(t.shown())),
            None => Err(CalcError::Incomplete),
        }
    }
}
