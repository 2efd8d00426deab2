//! `calculate`: arithmetic the model should not do in its head. One string argument, the
//! expression as the user said it ("17 times 23", "15% of 80", "sqrt(2) * 3"), evaluated
//! by our own parser (`eval.rs`: no `eval`, no crate); the answer is a sentence the model
//! can repeat ("17 * 23 = 391."), rounded to 10 significant digits for people
//! (0.1 + 0.2 = 0.3).

mod eval;
#[cfg(test)]
mod tests;

pub use eval::{evaluate, CalcError, MAX_CHARS, MAX_DEPTH};

use super::{string_arg, Context, Output, Skill, SkillError};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

pub(super) const NAME: &str = "calculate";

pub struct Calculator;

impl Skill for Calculator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "Work out arithmetic exactly: + - * / ^, percentages, sqrt, round, abs."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "expression": { "type": "string", "description": "The sum to work out, like 17 * 23 or 15% of 80" }
            },
            "required": ["expression"]
        })
    }

    fn execute(&self, arguments: Value, _ctx: Context) -> BoxFuture<'static, Result<Output, SkillError>> {
        let expression = match arguments.get("expression") {
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => string_arg(&arguments, "expression").map(str::to_string),
        };
        Box::pin(async move {
            let expression = expression?;
            let said = answer(&expression).map_err(|e| SkillError::Failed(e.to_string()))?;
            Ok(Output { content: said, citations: Vec::new() })
        })
    }
}

/// "17 * 23 = 391." for the expression as given (its trailing '?' and '=' dropped).
pub fn answer(expression: &str) -> Result<String, CalcError> {
    let value = evaluate(expression)?;
    let shown = expression.trim().trim_end_matches(['?', '=', '.', ' ']);
    Ok(format!("{shown} = {}.", format_number(value)))
}

/// A number for people: whole numbers in full below 10^15, others rounded to 10
/// significant digits without trailing zeros; very large or small ones as `1.5e20`.
pub fn format_number(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x.is_finite() { "0".into() } else { x.to_string() };
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let scientific = format!("{x:.9e}");
    let rounded: f64 = scientific.parse().unwrap_or(x);
    if rounded.abs() >= 1e15 || rounded.abs() < 1e-9 {
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        return format!("{mantissa}e{exponent}");
    }
    format!("{rounded}")
}
