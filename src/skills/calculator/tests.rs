use super::*;
use crate::notices::Channel;
use std::time::{Duration, Instant};

fn calc(expression: &str) -> String {
    match evaluate(expression) {
        Ok(v) => format_number(v),
        Err(e) => panic!("{expression}: {e}"),
    }
}

fn fails(expression: &str) -> CalcError {
    match evaluate(expression) {
        Ok(v) => panic!("{expression} gave {v}, not an error"),
        Err(e) => e,
    }
}

#[test]
fn arithmetic_follows_the_usual_precedence() {
    for (expression, expected) in [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("10 - 4 - 3", "3"),
        ("100 / 10 / 5", "2"),
        ("2 ^ 3 ^ 2", "512"),
        ("2 ** 10", "1024"),
        ("-2 ^ 2", "-4"),
        ("(-2) ^ 2", "4"),
        ("2 ^ -1", "0.5"),
        ("--3", "3"),
        ("-(3 + 4) * 2", "-14"),
        ("+5", "5"),
        ("7 / 2", "3.5"),
        ("10 % 3", "1"),
        ("10 mod 4", "2"),
        ("-7 % 3", "-1"),
        ("3.5 * 2", "7"),
        (".5 + .25", "0.75"),
        ("1,250 * 2", "2500"),
        ("1,000,000 / 4", "250000"),
        ("2.5e3 + 1", "2501"),
        ("[1 + 2] * 2", "6"),
    ] {
        assert_eq!(calc(expression), expected, "{expression}");
    }
}

#[test]
fn results_are_rounded_for_people() {
    assert_eq!(calc("0.1 + 0.2"), "0.3");
    assert_eq!(calc("1 / 3"), "0.3333333333");
    assert_eq!(calc("2 / 3"), "0.6666666667");
    assert_eq!(calc("10 / 4"), "2.5");
    assert_eq!(calc("sqrt(2)"), "1.414213562");
    assert_eq!(calc("123456789 * 1000"), "123456789000", "whole numbers in full");
    assert_eq!(calc("10 ^ 20"), "1e20");
    assert_eq!(calc("2 ^ 0.5 * 10 ^ 30"), "1.414213562e30");
    assert_eq!(calc("1 / 10 ^ 12"), "1e-12");
    assert_eq!(calc("0 * -1"), "0", "never -0");
    assert_eq!(calc("pi"), "3.141592654");
}

#[test]
fn functions_percentages_and_words() {
    for (expression, expected) in [
        ("sqrt(16)", "4"),
        ("sqrt 16 + 9", "13"),
        ("round(2.5)", "3"),
        ("round(-2.5)", "-3"),
        ("abs(-4.25)", "4.25"),
        ("abs(3 - 10) * 2", "14"),
        ("15% of 80", "12"),
        ("15 percent of 80", "12"),
        ("12.5 per cent of 200", "25"),
        ("15% of 80 + 5", "17"),
        ("50%", "0.5"),
        ("200 * 10%", "20"),
        ("17 times 23", "391"),
        ("What is 17 times 23?", "391"),
        ("what's 100 divided by 8", "12.5"),
        ("6 multiplied by 7", "42"),
        ("3 x 4", "12"),
        ("3×4÷6", "2"),
        ("10 plus 5 minus 3", "12"),
        ("2 to the power of 10", "1024"),
        ("9 squared", "81"),
        ("2 cubed", "8"),
        ("square root of 81", "9"),
        ("the square root of 2 times 2", "2.828427125"),
        ("Calculate 3 * 4, please", "12"),
        ("1 − 3", "-2"),
        ("12 over 4", "3"),
    ] {
        assert_eq!(calc(expression), expected, "{expression}");
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    assert_eq!(fails("1 / 0"), CalcError::DivisionByZero);
    assert_eq!(fails("5 % 0"), CalcError::DivisionByZero);
    assert_eq!(fails("5 mod (2 - 2)"), CalcError::DivisionByZero);
    assert_eq!(fails("0 ^ -1"), CalcError::DivisionByZero);
    assert_eq!(fails("foo + 1"), CalcError::UnknownName("foo".into()));
    assert!(fails("launch the rockets").to_string().contains("unknown name 'launch'"));
    assert_eq!(fails(""), CalcError::Empty);
    assert_eq!(fails("what is"), CalcError::Empty);
    assert_eq!(fails("1 +"), CalcError::Incomplete);
    assert_eq!(fails("(1 + 2"), CalcError::Unclosed);
    assert_eq!(fails("1 + 2)"), CalcError::Unexpected(")".into()));
    assert_eq!(fails("2 (3)"), CalcError::Unexpected("(".into()), "no implied multiplication");
    assert_eq!(fails("1,5 + 1"), CalcError::Unexpected("5".into()), "a decimal comma is not guessed at");
    assert_eq!(fails("3 of 4"), CalcError::StrayOf);
    assert_eq!(fails("1.2.3"), CalcError::Unexpected("1.2.3".into()));
    assert_eq!(fails("2 & 3"), CalcError::Unexpected("&".into()));
    assert!(matches!(fails("sqrt(-1)"), CalcError::NotReal(_)));
    assert!(matches!(fails("(-8) ^ (1/3)"), CalcError::NotReal(_)));
    assert_eq!(fails(&format!("1{}", "+1".repeat(100))), CalcError::TooLong);
}

#[test]
fn hostile_input_fails_fast_without_panicking() {
    let started = Instant::now();
    assert_eq!(fails("10 ^ 400"), CalcError::Overflow);
    assert_eq!(fails("9 ^ 9 ^ 9 ^ 9"), CalcError::Overflow);
    assert_eq!(fails("1e999"), CalcError::Overflow);
    assert_eq!(fails("99999999999 ^ 99999999999"), CalcError::Overflow);
    assert_eq!(fails("(10 ^ 300) * (10 ^ 300)"), CalcError::Overflow);
    assert_eq!(fails("-(10 ^ 300) * 10 ^ 300"), CalcError::Overflow);
    assert_eq!(calc("2 ^ -99999"), "0", "underflow is zero, not an error");
    // Nesting: parentheses, signs, functions and powers all count.
    let parens = format!("{}1{}", "(".repeat(90), ")".repeat(90));
    assert_eq!(fails(&parens), CalcError::TooDeep);
    assert_eq!(fails(&format!("{}1", "-".repeat(150))), CalcError::TooDeep);
    assert_eq!(fails(&format!("{}1", "sqrt ".repeat(30))), CalcError::TooDeep);
    assert_eq!(fails(&format!("2{}", "^2".repeat(40))), CalcError::TooDeep);
    let nested = format!("{}1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(calc(&nested), "1", "as deep as allowed still works");
    assert_eq!(fails(&"(".repeat(MAX_CHARS)), CalcError::TooDeep);
    assert_eq!(fails(&")".repeat(MAX_CHARS)), CalcError::Unexpected(")".into()));
    assert_eq!(calc(&"9".repeat(MAX_CHARS)), "1e200");
    assert!(evaluate(&"9".repeat(MAX_CHARS + 1)).is_err());
    assert!(evaluate("\u{0}\u{202e}").is_err());
    assert!(evaluate("１２３").is_err(), "fullwidth digits are not read as numbers");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

#[tokio::test]
async fn the_skill_answers_with_a_sentence_or_an_error_the_model_reads() {
    let skills = crate::skills::Skills::default().with(std::sync::Arc::new(Calculator));
    let ctx = Context::new(None, Channel::Satellite);
    let skills = skills.allowed(&ctx).await.unwrap();
    let call = |args| crate::engine::ToolCall::new(NAME, args);
    let (run, _) = skills.run(&call(json!({"expression": "17 times 23?"})), ctx.clone()).await;
    assert!(run.ok, "{run:?}");
    assert_eq!(run.result, "17 times 23 = 391.");
    let (run, _) = skills.run(&call(json!({"expression": 42})), ctx.clone()).await;
    assert_eq!((run.ok, run.result.as_str()), (true, "42 = 42."));
    let (run, _) = skills.run(&call(json!({"expression": "1/0"})), ctx.clone()).await;
    assert!(!run.ok && run.result.contains("division by zero"), "{run:?}");
    let (run, _) = skills.run(&call(json!({})), ctx).await;
    assert!(!run.ok && run.result.contains("'expression' is required"), "{run:?}");
}
