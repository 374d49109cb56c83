//! Compile errors of `#[qron::job]` misuse: one mistake per file under `tests/ui/job/fail/`,
//! with the expected message beside it (`TRYBUILD=overwrite` regenerates them).

#[test]
fn job_attribute_misuse() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/job/fail/*.rs");
}
