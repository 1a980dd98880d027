//! Compile-fail tests: `#[service]` rejects bad definitions with errors that point at the user's code.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail_*.rs");
    t.pass("tests/ui/pass_*.rs");
}
