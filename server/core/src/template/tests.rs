use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;

/// The built-in templates, as the server loads them.
const BUILTINS: &[(&str, &str)] = &[
    ("web", include_str!("../../../../templates/web.yaml")),
    ("worker", include_str!("../../../../templates/worker.yaml")),
    ("web-postgres", include_str!("../../../../templates/web-postgres.yaml")),
    ("static", include_str!("../../../../templates/static.yaml")),
    ("preview", include_str!("../../../../templates/preview.yaml")),
];

const SAMPLE: &str = r#"
apiVersion: slipway.dev/v1
kind: EnvironmentTemplate
metadata: {name: sample, version: 1.2.0, description: "for tests"}
parameters:
  replicas: {type: integer, default: 2, minimum: 1, maximum: 10}
  memory:   {type: string, default: 256Mi, pattern: "^[0-9]+(Mi|Gi)$"}
  public:   {type: boolean, default: true}
  tier:     {type: enum, values: [small, large], default: small}
  owner:    {type: string, required: true}
  note:     {type: string}
spec:
  workloads:
    web:
      replicas: "${replicas}"
      memory: "${memory}"
      port: 8080
      health: /healthz
      env: {PUBLIC: "${public}", TIER: "size-${tier}", OWNER: "${owner}", LITERAL: "$${not_a_param}", NOTE: "${note}", NOTED: "n-${note}"}
  addons: []
  policy: {ttl: null, max_replicas: 10}
"#;

fn given(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

#[test]
fn rendering_is_typed_and_interpolates() {
    let template = Template::parse(SAMPLE).expect("valid");
    assert_eq!(template.name, "sample");
    assert_eq!(template.version.to_string(), "1.2.0");
    let (values, spec) =
        template.render(&given(&[("owner", json!("ana")), ("replicas", json!("3"))])).expect("renders");
    assert_eq!(values["replicas"], json!(3), "a text value of an integer parameter becomes an integer");
    let web = &spec.workloads["web"];
    assert_eq!(web.replicas, 3);
    assert_eq!(web.memory.as_deref(), Some("256Mi"));
    assert_eq!(web.env["PUBLIC"], "true");
    assert_eq!(web.env["TIER"], "size-small");
    assert_eq!(web.env["OWNER"], "ana");
    assert_eq!(web.env["LITERAL"], "${not_a_param}", "$${{ escapes");
    assert!(!web.env.contains_key("NOTE"), "an optional parameter left out leaves its variable unset");
    assert_eq!(web.env["NOTED"], "n-", "and renders empty inside text");
    // Deterministic: the same values render the same spec, byte for byte.
    let again = template.render(&given(&[("replicas", json!(3)), ("owner", json!("ana"))])).expect("renders").1;
    assert_eq!(serde_json::to_string(&spec).unwrap(), serde_json::to_string(&again).unwrap());
}

#[test]
fn parameter_values_are_checked_against_every_rule() {
    let template = Template::parse(SAMPLE).expect("valid");
    let owner = ("owner", json!("ana"));
    let cases: Vec<(Vec<(&str, Value)>, &str)> = vec![
        (vec![owner.clone(), ("replicas", json!(0))], "parameter \"replicas\": 0 is below the minimum 1"),
        (vec![owner.clone(), ("replicas", json!(11))], "parameter \"replicas\": 11 is above the maximum 10"),
        (
            vec![owner.clone(), ("replicas", json!("two"))],
            "parameter \"replicas\": \"two\" is not a valid integer value",
        ),
        (vec![owner.clone(), ("replicas", json!(2.5))], "parameter \"replicas\": 2.5 is not a valid integer value"),
        (vec![owner.clone(), ("replicas", json!(true))], "is not a valid integer value"),
        (vec![owner.clone(), ("memory", json!("lots"))], "parameter \"memory\": \"lots\" does not match the pattern"),
        (vec![owner.clone(), ("memory", json!(256))], "parameter \"memory\": 256 is not a valid string value"),
        (vec![owner.clone(), ("public", json!("yes"))], "parameter \"public\": \"yes\" is not a valid boolean value"),
        (vec![owner.clone(), ("public", json!(1))], "is not a valid boolean value"),
        (vec![owner.clone(), ("tier", json!("huge"))], "parameter \"tier\": \"huge\" is not one of small, large"),
        (vec![owner.clone(), ("tier", json!(1))], "is not a valid enum value"),
        (vec![owner.clone(), ("colour", json!("red"))], "parameter \"colour\" is not declared by the template"),
        (vec![], "parameter \"owner\" is required"),
        (vec![("owner", json!("x".repeat(1025)))], "longer than 1024"),
    ];
    for (values, expected) in cases {
        let err = template.render(&given(&values)).expect_err(expected).to_string();
        assert!(err.contains(expected), "{values:?}: {err}");
    }
    // Each type accepts its own values, typed or as text.
    let ok = template
        .render(&given(&[owner, ("public", json!("false")), ("tier", json!("large")), ("memory", json!("1Gi"))]))
        .expect("valid values");
    assert_eq!(ok.0["public"], json!(false));
    assert_eq!(ok.1.workloads["web"].memory.as_deref(), Some("1Gi"));
}

#[test]
fn a_value_that_breaks_the_spec_is_refused_with_its_path() {
    let source = SAMPLE.replace("maximum: 10}", "maximum: 50}");
    let template = Template::parse(&source).expect("valid with defaults");
    let err = template.render(&given(&[("owner", json!("a")), ("replicas", json!(30))])).unwrap_err();
    assert_eq!(err.to_string(), "spec.workloads.web.replicas: 30 is above the maximum of 10");
}

#[test]
fn yaml_errors_carry_line_and_column() {
    let broken =
        "apiVersion: slipway.dev/v1\nkind: EnvironmentTemplate\nmetadata: {name: x, version: 1.0.0\nspec: {}\n";
    match Template::parse(broken) {
        Err(TemplateError::Yaml { line, column, .. }) => assert_eq!((line, column), (4, 5)),
        other => panic!("{other:?}"),
    }
    let typo = SAMPLE.replace("  public:   {type: boolean", "  public:   {typ: boolean");
    match Template::parse(&typo) {
        Err(TemplateError::Yaml { line, message, .. }) => {
            assert_eq!(line, 8, "{message}");
            assert!(message.contains("unknown field `typ`"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_templates_are_refused_with_the_reason() {
    let cases: Vec<(String, &str)> = vec![
        (SAMPLE.replace("slipway.dev/v1", "v2"), "apiVersion must be slipway.dev/v1"),
        (SAMPLE.replace("kind: EnvironmentTemplate", "kind: Pod"), "kind must be EnvironmentTemplate"),
        (SAMPLE.replace("name: sample", "name: Sample"), "metadata.name \"Sample\""),
        (SAMPLE.replace("version: 1.2.0", "version: 1.2"), "metadata.version \"1.2\""),
        (SAMPLE.replace("version: 1.2.0", "version: 01.2.0"), "is not a version"),
        (SAMPLE.replace("minimum: 1, maximum: 10", "minimum: 10, maximum: 1"), "minimum 10 is above maximum 1"),
        (SAMPLE.replace("default: 2, minimum: 1", "default: 20, minimum: 1"), "the default of parameter \"replicas\""),
        (SAMPLE.replace("values: [small, large], ", ""), "an enum needs a list of values"),
        (SAMPLE.replace("\"^[0-9]+(Mi|Gi)$\"", "\"([\""), "pattern \"([\" is not valid"),
        (
            SAMPLE.replace("{type: string, required: true}", "{type: string, required: true, default: x}"),
            "cannot have a default",
        ),
        (SAMPLE.replace("{type: boolean, default: true}", "{type: boolean, minimum: 1}"), "integer parameters only"),
        (
            SAMPLE.replace("\"${memory}\"", "\"${memroy}\""),
            "spec.workloads.web.memory uses ${memroy}, which is not a declared parameter",
        ),
        (
            SAMPLE.replace("port: 8080", "port: 8080\n      colour: red"),
            "spec.workloads.web.colour: unknown field `colour`",
        ),
        (
            SAMPLE.replace("health: /healthz", "health: healthz"),
            "spec.workloads.web.health: \"healthz\" is not an HTTP path",
        ),
        (SAMPLE.replace("addons: []", "addons: [mysql]"), "an add-on is `postgres`, `redis`"),
        (SAMPLE.replace("addons: []", "addons: [redis, {type: redis}]"), "redis is listed twice"),
        (SAMPLE.replace("ttl: null", "ttl: soon"), "spec.policy.ttl: \"soon\" is not a duration"),
        (
            SAMPLE.replace("ttl: null", "ttl: null, drain_seconds: 3601"),
            "spec.policy.drain_seconds: must be at most 3600 (an hour), not 3601",
        ),
        (SAMPLE.replace("port: 8080", "port: 70000"), "spec.workloads.web.port"),
        (SAMPLE.replace("    web:\n", "    api:\n"), "only the workload named web receives traffic"),
        (SAMPLE.replace("\"${memory}\"", "512M"), "is not a memory size"),
        ("x".repeat(MAX_TEMPLATE_BYTES + 1), "larger than"),
        (SAMPLE.replace("port: 8080", "port: 8080\n      autoscale: {min: 2, max: 4}"), "needs the workload's cpu"),
        (
            SAMPLE.replace("port: 8080", "port: 8080\n      cpu: 500m\n      autoscale: {min: 5, max: 4}"),
            "needs 1 ≤ min (5) ≤ max (4)",
        ),
        (
            SAMPLE.replace(
                "port: 8080",
                "port: 8080\n      cpu: 500m\n      autoscale: {min: 1, max: 4, cpu_percent: 0}",
            ),
            "not a percentage",
        ),
    ];
    for (source, expected) in cases {
        let err = Template::parse(&source).expect_err(expected).to_string();
        assert!(err.contains(expected), "expected {expected:?}, got {err:?}");
    }
}

#[test]
fn references_and_versions_parse() {
    assert_eq!(parse_reference("web").unwrap(), ("web".to_owned(), None));
    assert_eq!(parse_reference("web@1.10.0").unwrap().1, Version::parse("1.10.0"));
    assert!(Version::parse("1.10.0") > Version::parse("1.9.3"));
    assert!(parse_reference("web@latest").unwrap_err().contains("not a version"));
    assert!(parse_reference("Web").is_err());
    for bad in ["", "1", "1.2", "1.2.3.4", "1.-2.3", "a.b.c", "1.02.3", "1.2.1234567890"] {
        assert_eq!(Version::parse(bad), None, "{bad}");
    }
    assert_eq!(Version::parse("1.2.123456789").map(|v| v.patch), Some(123_456_789), "nine digits are a version");
}

/// Golden renderings of every built-in template with its defaults: a change to a
/// built-in shows up here. `SLIPWAY_UPDATE_GOLDEN=1` rewrites the files after a
/// deliberate change.
#[test]
fn built_in_templates_render_their_golden_specs() {
    let golden_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/golden");
    for (name, source) in BUILTINS {
        let template = Template::parse(source).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(template.name, *name);
        let (_, spec) = template.render(&BTreeMap::new()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let rendered = serde_json::to_string_pretty(&spec).unwrap() + "\n";
        let path = golden_dir.join(format!("{name}.json"));
        if std::env::var_os("SLIPWAY_UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &rendered).unwrap();
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(rendered, golden, "{name} renders differently from {}", path.display());
    }
}
