//! `extsecret render` end to end on the fake store: output rules, store and namespace rules, and
//! the API subset (strictness, unsupported fields, versions).

mod common;

use common::{extsecret, failed, ok, run, silent_port, tempdir, write};

const STORE: &str = r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: fake, namespace: team-a}
spec:
  provider:
    fake:
      data:
        - {key: db, value: '{"user":"admin","pass":"hunter2-value","n":1.50,"obj":{"a":1}}'}
        - {key: token, value: tok-value-1}
        - {key: app/one, value: one-value}
        - {key: app/two, value: two-value}
"#;

/// Renders ExternalSecret `team-a/es` (store `fake`) with `spec` after `secretStoreRef`, and asserts
/// that the render fails with `expected` on stderr.
fn expect_spec_error(spec: &str, expected: &str) {
    let input = format!("{STORE}---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: es, namespace: team-a}}\nspec:\n  secretStoreRef: {{name: fake}}\n  {spec}\n");
    let err = failed(&render_stdin(&[], &input));
    assert!(err.contains(expected), "{expected}\n{err}");
}

fn render_stdin(args: &[&str], input: &str) -> std::process::Output {
    let mut a = vec!["render"];
    a.extend_from_slice(args);
    run(extsecret(&a), Some(input.as_bytes()))
}

#[test]
fn renders_the_embedded_example_byte_for_byte() {
    let out = ok(&run(extsecret(&["render", "examples/basic"]), None));
    let expected = "\
# Everything that is not an ExternalSecret passes through unchanged.
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: demo
data:
  LOG_LEVEL: info # stays exactly as written
---
apiVersion: v1
kind: Secret
metadata:
  name: database-credentials
  namespace: demo
  labels:
    app.kubernetes.io/name: demo
  annotations:
    argocd.argoproj.io/sync-wave: \"-1\"
type: Opaque
data:
  password: czNjcjN0LWRlbW8=
  port: NTQzMg==
  username: YXBw
---
apiVersion: v1
kind: Secret
metadata:
  name: api
  namespace: demo
type: Opaque
data:
  db_password: czNjcjN0LWRlbW8=
  db_port: NTQzMg==
  db_tls: eyJtb2RlIjoidmVyaWZ5LWZ1bGwifQ==
  db_username: YXBw
  id_ed25519.pub: c3NoLWVkMjU1MTkgQUFBQSBkZW1v
  token: dG9rLTEyMw==
  token-previous: dG9rLW9sZA==
";
    assert_eq!(out, expected);
}

#[test]
fn json_output_is_a_v1_list() {
    let out = ok(&run(extsecret(&["render", "examples/basic", "-o", "json"]), None));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"].as_array().unwrap().len(), 3);
    assert_eq!(v["items"][1]["data"]["username"], "YXBw");
}

#[test]
fn merge_order_is_datafrom_in_order_then_data_and_metadata_is_filtered() {
    let input = format!(
        "{STORE}---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: es
  namespace: team-a
  labels: {{app: x}}
  annotations:
    argocd.argoproj.io/hook: PreSync
    kubectl.kubernetes.io/last-applied-configuration: '{{}}'
    config.kubernetes.io/index: '0'
    internal.config.kubernetes.io/path: es.yaml
    kustomize.config.k8s.io/id: 'x'
    config.k8s.io/id: '1'
spec:
  secretStoreRef: {{name: fake}}
  target: {{name: out, immutable: true}}
  dataFrom:
    - extract: {{key: db}}
    - find: {{name: {{regexp: '^app/'}}}}
  data:
    - secretKey: user
      remoteRef: {{key: token}}
"
    );
    let out = ok(&render_stdin(&[], &input));
    assert_eq!(
        out,
        "apiVersion: v1
kind: Secret
metadata:
  name: out
  namespace: team-a
  labels:
    app: x
  annotations:
    argocd.argoproj.io/hook: PreSync
type: Opaque
immutable: true
data:
  app_one: b25lLXZhbHVl
  app_two: dHdvLXZhbHVl
  \"n\": MS41MA==
  obj: eyJhIjoxfQ==
  pass: aHVudGVyMi12YWx1ZQ==
  user: dG9rLXZhbHVlLTE=
"
    );
}

#[test]
fn unknown_fields_fail_strictly_and_warn_when_lenient() {
    let input = format!(
        "{STORE}---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: typo, namespace: team-a}}
spec:
  secretStoreRef: {{name: fake}}
  data:
    - secretKey: p
      remoteRef: {{key: db, propery: pass}}
"
    );
    let err = failed(&render_stdin(&[], &input));
    assert!(err.contains("<stdin>: document 1: ExternalSecret team-a/typo: spec.data[0].remoteRef.propery: unknown field"), "{err}");
    let o = render_stdin(&["--lenient"], &input);
    let out = ok(&o);
    assert!(common::stderr(&o).contains("spec.data[0].remoteRef.propery: unknown field ignored"));
    // Lenient: the typo is ignored, so the whole value is rendered (which is why strict is the default).
    assert!(out.contains("p: eyJ1c2VyIjoiYWRtaW4iLCJwYXNzIjoiaHVudGVyMi12YWx1ZSIsIm4iOjEuNTAsIm9iaiI6eyJhIjoxfX0=\n"), "{out}");
}

#[test]
fn unsupported_features_and_kinds_are_refused_by_name() {
    let cases = [
        (
            "target: {template: {engineVersion: v1}}\n  data: [{secretKey: a, remoteRef: {key: token}}]",
            "spec.target.template.engineVersion: not supported: only engine v2 exists",
        ),
        (
            "target: {template: {metadata: {finalizers: [x]}}}\n  data: [{secretKey: a, remoteRef: {key: token}}]",
            "spec.target.template.metadata.finalizers: not supported",
        ),
        (
            "data: [{secretKey: a, remoteRef: {key: token}, sourceRef: {generatorRef: {kind: Password, name: p}}}]",
            "spec.data[0].sourceRef.generatorRef: not supported",
        ),
        ("dataFrom: [{extract: {key: db}, rewrite: [{merge: {into: x}}]}]", "spec.dataFrom[0].rewrite[0].merge: not supported"),
        (
            "target: {manifest: {apiVersion: v1, kind: ConfigMap}}\n  data: [{secretKey: a, remoteRef: {key: token}}]",
            "spec.target.manifest: not supported",
        ),
    ];
    for (spec, expected) in cases {
        expect_spec_error(spec, expected);
    }
    for (doc, expected) in [
        (
            "apiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: c}\nspec: {}\n",
            "kind `ClusterExternalSecret` of external-secrets.io is not supported",
        ),
        (
            "apiVersion: external-secrets.io/v1alpha1\nkind: PushSecret\nmetadata: {name: c}\nspec: {}\n",
            "kind `PushSecret` of external-secrets.io is not supported",
        ),
        (
            "apiVersion: external-secrets.io/v2\nkind: ExternalSecret\nmetadata: {name: c}\nspec: {}\n",
            "apiVersion `external-secrets.io/v2` is not supported",
        ),
    ] {
        let err = failed(&render_stdin(&[], doc));
        assert!(err.contains(expected), "{expected}\n{err}");
    }
}

#[test]
fn v1beta1_and_v1alpha1_shapes_render_like_v1() {
    let input = format!(
        "{}---
apiVersion: external-secrets.io/v1alpha1
kind: ExternalSecret
metadata: {{name: old, namespace: team-a}}
spec:
  secretStoreRef: {{name: fake, kind: SecretStore}}
  target: {{name: old-secret, creationPolicy: Owner}}
  data:
    - secretKey: tok
      remoteRef: {{key: token}}
  dataFrom:
    - key: db
---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {{name: beta, namespace: team-a}}
spec:
  secretStoreRef: {{name: fake, kind: ''}}
  data:
    - secretKey: user
      remoteRef: {{key: db, property: user, conversionStrategy: Default, decodingStrategy: None, metadataPolicy: None}}
",
        STORE.replace("external-secrets.io/v1\n", "external-secrets.io/v1beta1\n")
    );
    let out = ok(&render_stdin(&[], &input));
    assert!(out.contains("name: old-secret\n  namespace: team-a\ntype: Opaque\ndata:\n  \"n\": MS41MA==\n  obj: eyJhIjoxfQ==\n  pass: aHVudGVyMi12YWx1ZQ==\n  tok: dG9rLXZhbHVlLTE=\n  user: YWRtaW4=\n"), "{out}");
    assert!(out.contains("name: beta\n  namespace: team-a\ntype: Opaque\ndata:\n  user: YWRtaW4=\n"), "{out}");
}

#[test]
fn a_secretstore_serves_only_its_own_namespace() {
    let es = "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es, namespace: team-b}\nspec:\n  secretStoreRef: {name: fake}\n  data: [{secretKey: a, remoteRef: {key: token}}, {secretKey: b, remoteRef: {key: db}}]\n";
    let err = failed(&render_stdin(&[], &format!("{STORE}{es}")));
    // One refused reference is one problem, however many entries use it.
    assert_eq!(err.matches("error: ").count(), 1, "{err}");
    assert!(err.contains("spec.secretStoreRef: SecretStore `fake` exists only in namespace(s) team-a; a SecretStore serves only its own namespace, not `team-b`"), "{err}");
}

#[test]
fn effective_namespace_comes_from_flag_then_argocd_and_output_keeps_the_original() {
    let store = STORE.replace("namespace: team-a", "namespace: team-c");
    let es = "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es}\nspec:\n  secretStoreRef: {name: fake}\n  data: [{secretKey: a, remoteRef: {key: token}}]\n";
    let input = format!("{store}{es}");
    let err = failed(&render_stdin(&[], &input));
    assert!(err.contains("this ExternalSecret has none: set metadata.namespace, --namespace or ARGOCD_APP_NAMESPACE"), "{err}");
    let out = ok(&render_stdin(&["--namespace", "team-c"], &input));
    assert_eq!(out, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: es\ntype: Opaque\ndata:\n  a: dG9rLXZhbHVlLTE=\n");
    let mut c = extsecret(&["render"]);
    c.env("ARGOCD_APP_NAMESPACE", "team-c");
    assert_eq!(ok(&run(c, Some(input.as_bytes()))), out);
}

#[test]
fn cluster_secret_stores_come_only_from_stores_and_obey_conditions() {
    let dir = tempdir();
    let css = STORE.replace("kind: SecretStore\nmetadata: {name: fake, namespace: team-a}", "kind: ClusterSecretStore\nmetadata: {name: shared}")
        + "  conditions:\n    - namespaces: [team-a]\n    - namespaceRegexes: ['^prod-']\n    - namespaceSelector: {matchLabels: {tier: gold}}\n";
    write(dir.path(), "stores/css.yaml", &css);
    write(dir.path(), "stores/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: gold-ns, labels: {tier: gold}}\n");
    let stores = dir.path().join("stores").display().to_string();
    let es = |ns: &str| {
        format!("apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: es, namespace: {ns}}}\nspec:\n  secretStoreRef: {{name: shared, kind: ClusterSecretStore}}\n  data: [{{secretKey: a, remoteRef: {{key: token}}}}]\n")
    };
    for allowed in ["team-a", "prod-eu", "gold-ns"] {
        let out = ok(&render_stdin(&["--stores", &stores], &es(allowed)));
        assert!(out.contains(&format!("namespace: {allowed}")), "{out}");
    }
    let err = failed(&render_stdin(&["--stores", &stores], &es("team-z")));
    assert!(err.contains("using ClusterSecretStore `shared` is not allowed from namespace `team-z`: denied by spec.conditions"), "{err}");
    // namespaceRegexes are unanchored, as in ESO (Go's MatchString): `^prod-` also admits
    // `prod-eu-canary`, and an unanchored pattern `team-b` admits `not-team-b`, with a warning.
    let out = render_stdin(&["--stores", &stores], &es("prod-eu-canary"));
    assert!(ok(&out).contains("namespace: prod-eu-canary"));
    assert!(common::stderr(&out).contains("namespaceRegexes[0] `^prod-` is not anchored"), "{}", common::stderr(&out));
    let loose = css.replace("'^prod-'", "'team-b'");
    write(dir.path(), "stores/css.yaml", &loose);
    let out = render_stdin(&["--stores", &stores], &es("not-team-b"));
    assert!(ok(&out).contains("namespace: not-team-b"));
    assert!(common::stderr(&out).contains("spec.conditions[1].namespaceRegexes[0] `team-b` is not anchored"), "{}", common::stderr(&out));
    // A ClusterSecretStore in the rendered input is refused, even if it would match.
    let err = failed(&render_stdin(&[], &format!("{css}---\n{}", es("team-a"))));
    assert!(err.contains("ClusterSecretStores are the cluster operator's and come only from --stores"), "{err}");
}

#[test]
fn no_input_stores_refuses_stores_from_the_stream() {
    let es = "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es, namespace: team-a}\nspec:\n  secretStoreRef: {name: fake}\n  data: [{secretKey: a, remoteRef: {key: token}}]\n";
    let mut c = extsecret(&["render"]);
    c.env("EXTSECRET_NO_INPUT_STORES", "1");
    let err = failed(&run(c, Some(format!("{STORE}{es}").as_bytes())));
    assert!(
        err.contains("SecretStores from the rendered input are refused (--no-input-stores, and by default in argocd generate)"),
        "{err}"
    );
}

#[test]
fn duplicate_targets_and_collisions_with_stream_secrets_name_both() {
    let es = |name: &str| {
        format!("---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: team-a}}\nspec:\n  secretStoreRef: {{name: fake}}\n  target: {{name: shared}}\n  data: [{{secretKey: a, remoteRef: {{key: token}}}}]\n")
    };
    let err = failed(&render_stdin(&[], &format!("{STORE}{}{}", es("one"), es("two"))));
    assert!(
        err.contains(
            "ExternalSecret team-a/two: spec.target.name: targets Secret `shared`, as does ExternalSecret team-a/one (<stdin>: document 1)"
        ),
        "{err}"
    );
    let existing = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: shared, namespace: team-a}\n";
    let err = failed(&render_stdin(&[], &format!("{STORE}{}{existing}", es("one"))));
    assert!(err.contains("targets Secret `shared`, which the stream already holds (<stdin>: document 2)"), "{err}");
}

#[test]
fn every_problem_of_the_run_is_reported_without_values() {
    let input = format!(
        "{STORE}---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: es, namespace: team-a}}
spec:
  secretStoreRef: {{name: fake}}
  data:
    - {{secretKey: a, remoteRef: {{key: missing}}}}
    - {{secretKey: b, remoteRef: {{key: db, property: nope}}}}
    - {{secretKey: c, remoteRef: {{key: token, property: x}}}}
    - {{secretKey: d, remoteRef: {{key: token, decodingStrategy: Base64}}}}
  dataFrom:
    - extract: {{key: token}}
"
    );
    let err = failed(&render_stdin(&[], &input));
    for expected in [
        "ExternalSecret team-a/es: spec.data[0].remoteRef.key: [NotFound] secret `missing` not found in the fake store",
        "spec.data[1].remoteRef.property: [NotFound] property `nope` does not exist in secret `db`",
        "spec.data[2].remoteRef.property: [NotFound] the value is not valid JSON",
        "spec.data[3].remoteRef.decodingStrategy: decodingStrategy Base64: the value is not valid base64",
        "spec.dataFrom[0].extract.key: the secret is not a JSON object",
        "5 problem(s); nothing was written to stdout",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    for value in ["hunter2-value", "tok-value-1", "admin"] {
        assert!(!err.contains(value), "value leaked: {value}\n{err}");
    }
}

#[test]
fn validation_errors_name_the_field() {
    let cases = [
        ("data: [{secretKey: 'bad/key', remoteRef: {key: token}}]", "spec.data[0].secretKey: `bad/key` is not a valid Secret key"),
        (
            "data: [{secretKey: a, remoteRef: {key: token}}, {secretKey: a, remoteRef: {key: db}}]",
            "spec.data[1].secretKey: duplicate secretKey `a`",
        ),
        ("dataFrom: [{find: {name: {regexp: '('}}}]", "spec.dataFrom[0].find.name.regexp: invalid regular expression"),
        ("dataFrom: [{extract: {key: db}, find: {name: {regexp: a}}}]", "spec.dataFrom[0]: extract and find are mutually exclusive"),
        (
            "data: [{secretKey: a, remoteRef: {key: token, decodingStrategy: Base32}}]",
            "spec.data[0].remoteRef.decodingStrategy: unknown variant",
        ),
        (
            "data: [{secretKey: a, remoteRef: {key: token}, sourceRef: {storeRef: {name: nowhere}}}]",
            "spec.data[0].sourceRef.storeRef: no SecretStore `nowhere` in namespace `team-a`",
        ),
        ("dataFrom: [{find: {name: {regexp: '^nomatch$'}}}]", "spec: the ExternalSecret produced no data"),
        (
            "dataFrom: [{find: {name: {regexp: '^app/'}}, rewrite: [{regexp: {source: '.*', target: ''}}]}]",
            "becomes ``, which is not a valid Secret key",
        ),
    ];
    for (spec, expected) in cases {
        expect_spec_error(spec, expected);
    }
}

#[test]
fn bad_input_names_file_and_document_and_prints_nothing() {
    let dir = tempdir();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("dup.yaml", b"apiVersion: v1\nkind: ConfigMap\nkind: Secret\n".to_vec(), "dup.yaml: document 0: invalid YAML"),
        (
            "utf8.yaml",
            b"apiVersion: v1\nkind: ConfigMap\ndata: {a: \"\xc3\x28\"}\n".to_vec(),
            "utf8.yaml: document 0: invalid UTF-8 at line 3 (byte 42)",
        ),
        ("nokind.yaml", b"apiVersion: v1\nmetadata: {name: x}\n".to_vec(), "nokind.yaml: document 0: object has no kind"),
        (
            "scalar.yaml",
            b"---\napiVersion: v1\nkind: A\n---\njust a string\n".to_vec(),
            "scalar.yaml: document 1: document is not a mapping",
        ),
        ("broken.yaml", b"apiVersion: v1\nkind: ConfigMap\ndata: [unclosed\n".to_vec(), "broken.yaml: document 0: invalid YAML"),
        (
            "deep.json",
            format!("{{\"apiVersion\":\"v1\",\"kind\":\"A\"}}\n{{\"x\": {}", "[".repeat(10)).into_bytes(),
            "deep.json: document 1: invalid JSON",
        ),
    ];
    for (name, bytes, expected) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = failed(&run(extsecret(&["render", p.to_str().unwrap()]), None));
        assert!(err.contains(expected), "{expected}\n{err}");
    }
    let err = failed(&run(extsecret(&["render", dir.path().join("absent.yaml").to_str().unwrap()]), None));
    assert!(err.contains("absent.yaml: cannot read: entity not found"), "{err}");
}

#[test]
fn folders_are_walked_and_build_files_skipped() {
    let dir = tempdir();
    write(dir.path(), "a/store.yaml", STORE);
    write(dir.path(), "a/b/es.yml", "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es, namespace: team-a}\nspec:\n  secretStoreRef: {name: fake}\n  data: [{secretKey: a, remoteRef: {key: token}}]\n");
    write(dir.path(), "a/kustomization.yaml", "resources: [b/es.yml]\n");
    write(dir.path(), "a/Chart.yaml", "name: x\n");
    write(dir.path(), "a/values-prod.yaml", "x: 1\n");
    write(dir.path(), "a/README.md", "not yaml: [\n");
    write(dir.path(), "a/cm.json", r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j"}}"#);
    let out = ok(&run(extsecret(&["render", dir.path().to_str().unwrap()]), None));
    assert_eq!(
        out,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: es\n  namespace: team-a\ntype: Opaque\ndata:\n  a: dG9rLXZhbHVlLTE=\n---\n{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"j\"}}\n"
    );
}

#[test]
fn lists_are_expanded_and_empty_output_is_refused() {
    let list = "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: in-list}\n".to_string();
    let out = ok(&render_stdin(&[], &list));
    assert_eq!(out, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: in-list\n");
    let err = failed(&render_stdin(&[], "# nothing here\n---\n"));
    assert!(err.contains("refusing empty output"), "{err}");
    let o = render_stdin(&["--allow-empty"], "");
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
}

#[test]
fn problems_of_parsing_and_resolving_are_reported_together() {
    let input = format!(
        "{STORE}---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: typo, namespace: team-a}}\nspec:\n  secretStoreRef: {{name: fake}}\n  data: [{{secretKey: a, remoteRef: {{key: token, propery: x}}}}]\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: missing, namespace: team-a}}\nspec:\n  secretStoreRef: {{name: fake}}\n  data: [{{secretKey: a, remoteRef: {{key: nope}}}}]\n"
    );
    let err = failed(&render_stdin(&[], &input));
    assert!(err.contains("ExternalSecret team-a/typo: spec.data[0].remoteRef.propery: unknown field"), "{err}");
    assert!(err.contains("ExternalSecret team-a/missing: spec.data[0].remoteRef.key: [NotFound]"), "{err}");
}

#[test]
fn the_overall_deadline_fails_the_render_in_time() {
    // A provider endpoint that accepts connections and never answers.
    let port = silent_port();
    let input = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: aws, namespace: team-a}\nspec:\n  provider:\n    aws: {service: SecretsManager, region: us-east-1}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es, namespace: team-a}\nspec:\n  secretStoreRef: {name: aws}\n  data: [{secretKey: a, remoteRef: {key: k}}]\n";
    let mut c = extsecret(&["render", "--timeout", "2s", "--trust-input-stores"]);
    c.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")).env("AWS_ACCESS_KEY_ID", "x").env("AWS_SECRET_ACCESS_KEY", "y");
    let start = std::time::Instant::now();
    let err = failed(&run(c, Some(input.as_bytes())));
    assert!(start.elapsed() < std::time::Duration::from_secs(15), "took {:?}", start.elapsed());
    // The run fails as a whole, naming the store that did not answer and its host.
    assert!(
        err.contains(&format!(
            "ExternalSecret team-a/es: spec.data[0].remoteRef.key: [Timeout] SecretStore team-a/aws (host 127.0.0.1:{port}) did not answer: deadline of 2s exceeded while reading from providers"
        )),
        "{err}"
    );
}

#[test]
fn external_secrets_cannot_hide_in_list_objects() {
    // Argo CD flattens any object whose `items` is a sequence: so does the render.
    let input = format!(
        "{STORE}---\napiVersion: v1\nkind: SecretList\nitems:\n  - apiVersion: external-secrets.io/v1\n    kind: ExternalSecret\n    metadata: {{name: hidden, namespace: team-a}}\n    spec:\n      secretStoreRef: {{name: fake}}\n      data: [{{secretKey: a, remoteRef: {{key: token}}}}]\n"
    );
    assert_eq!(
        ok(&render_stdin(&[], &input)),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: hidden\n  namespace: team-a\ntype: Opaque\ndata:\n  a: dG9rLXZhbHVlLTE=\n"
    );
}

#[test]
fn names_keys_and_policies_the_api_server_or_a_render_cannot_take_are_refused() {
    let cases = [
        ("  data: [{secretKey: ..data, remoteRef: {key: token}}]", "spec.data[0].secretKey: `..data` is not a valid Secret key"),
        (
            "  target: {name: Bad_Name}\n  data: [{secretKey: a, remoteRef: {key: token}}]",
            "spec.target.name: `Bad_Name` is not a valid Secret name",
        ),
        (
            "  target: {creationPolicy: Merge}\n  data: [{secretKey: a, remoteRef: {key: token}}]",
            "spec.target.creationPolicy: creationPolicy Merge merges into",
        ),
        (
            "  target: {creationPolicy: None}\n  data: [{secretKey: a, remoteRef: {key: token}}]",
            "spec.target.creationPolicy: creationPolicy None",
        ),
    ];
    for (spec, expected) in cases {
        let input = format!("{STORE}---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: es, namespace: team-a}}\nspec:\n  secretStoreRef: {{name: fake}}\n{spec}\n");
        let err = failed(&render_stdin(&[], &input));
        assert!(err.contains(expected), "{expected}\n{err}");
    }
    let orphan = format!("{STORE}---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: es, namespace: team-a}}\nspec:\n  secretStoreRef: {{name: fake}}\n  target: {{creationPolicy: Orphan}}\n  data: [{{secretKey: a, remoteRef: {{key: token}}}}]\n");
    ok(&render_stdin(&[], &orphan));
}

#[test]
fn a_namespace_selector_never_matches_a_namespace_whose_labels_are_unknown() {
    let dir = tempdir();
    let css = STORE
        .replace("kind: SecretStore\nmetadata: {name: fake, namespace: team-a}", "kind: ClusterSecretStore\nmetadata: {name: shared}")
        + "  conditions:\n    - namespaceSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [untrusted]}]}\n";
    write(dir.path(), "stores/css.yaml", &css);
    let stores = dir.path().join("stores").display().to_string();
    let es = "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es, namespace: team-x}\nspec:\n  secretStoreRef: {name: shared, kind: ClusterSecretStore}\n  data: [{secretKey: a, remoteRef: {key: token}}]\n";
    let err = failed(&render_stdin(&["--stores", &stores], es));
    assert!(err.contains("its labels are unknown and no namespaceSelector can match"), "{err}");
    write(dir.path(), "stores/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-x, labels: {tier: trusted}}\n");
    ok(&render_stdin(&["--stores", &stores], es));
}

#[test]
fn json_duplicate_keys_are_errors_and_yaml_errors_give_file_lines() {
    let dir = tempdir();
    let json = write(dir.path(), "dup.json", r#"{"apiVersion":"v1","kind":"ConfigMap","kind":"Secret"}"#);
    let err = failed(&run(extsecret(&["render", json.to_str().unwrap()]), None));
    assert!(err.contains("dup.json: document 0: invalid JSON: duplicate mapping key: kind"), "{err}");
    assert!(!err.contains("Options"), "{err}");
    let yaml = write(
        dir.path(),
        "second.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\ndata:\n  a: \"unclosed\n",
    );
    let err = failed(&run(extsecret(&["render", yaml.to_str().unwrap()]), None));
    assert!(err.contains("second.yaml: document 1: invalid YAML: unclosed quote at line 8"), "{err}");
}

#[test]
fn a_deadline_still_reports_the_stores_that_could_not_be_built() {
    let port = silent_port();
    let dir = tempdir();
    let creds = write(
        dir.path(),
        "creds.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: az, namespace: team-a}\nstringData: {id: 2d3c8a1e-1111-4222-8333-444455556666, pem: not-a-pem}\n",
    );
    let input = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: aws, namespace: team-a}\nspec:\n  provider:\n    aws: {service: SecretsManager, region: us-east-1}\n---\napiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: azure, namespace: team-a}\nspec:\n  provider:\n    azurekv:\n      vaultUrl: https://127.0.0.1:9\n      tenantId: 72f988bf-0000-4000-8000-00000000000a\n      authSecretRef:\n        clientId: {name: az, key: id}\n        clientCertificate: {name: az, key: pem}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es, namespace: team-a}\nspec:\n  secretStoreRef: {name: aws}\n  data:\n    - {secretKey: a, remoteRef: {key: k}}\n    - {secretKey: b, remoteRef: {key: k}, sourceRef: {storeRef: {name: azure}}}\n";
    let mut c = extsecret(&["render", "--timeout", "2s", "--trust-input-stores", "--credentials", creds.to_str().unwrap()]);
    c.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")).env("AWS_ACCESS_KEY_ID", "x").env("AWS_SECRET_ACCESS_KEY", "y");
    let err = failed(&run(c, Some(input.as_bytes())));
    assert!(
        err.contains("spec.data[1].remoteRef.key: [Config] authSecretRef.clientCertificate: no CERTIFICATE block (SecretStore team-a/azure is unusable)"),
        "{err}"
    );
    assert!(err.contains("deadline of 2s exceeded"), "{err}");
}

#[test]
fn remote_keys_that_become_one_secret_key_in_one_data_from_entry_are_an_error() {
    // `app/one` and `app/two` both rewritten to `app`: ESO silently keeps one; here an error
    // naming both remote keys.
    expect_spec_error(
        "dataFrom: [{find: {name: {regexp: '^app/'}}, rewrite: [{regexp: {source: '/.*', target: ''}}]}]",
        "spec.dataFrom[0].find: remote keys `app/one` and `app/two` both become the Secret key `app`",
    );
    // By conversionStrategy: `a.b` kept, `a/b` and `a b` both become `a_b` (ESO: "secret name
    // collision during conversion").
    let input = r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: fake, namespace: team-a}
spec:
  provider:
    fake:
      data:
        - {key: json, value: '{"a/b":"x-value","a b":"y-value","a.b":"z-value"}'}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: es, namespace: team-a}
spec:
  secretStoreRef: {name: fake}
  dataFrom: [{extract: {key: json}}]
"#;
    let err = failed(&render_stdin(&[], input));
    assert!(err.contains("spec.dataFrom[0].extract: remote keys `a b` and `a/b` both become the Secret key `a_b`"), "{err}");
    assert!(!err.contains("-value"), "a value leaked: {err}");
    // Across entries, a later entry overriding an earlier one is ESO's merge order and stays.
    let twice = input.replace("dataFrom: [{extract: {key: json}}]", "dataFrom: [{extract: {key: json}, rewrite: [{regexp: {source: '[/ ]', target: '-'}}]}, {extract: {key: json}, rewrite: [{regexp: {source: '[/ ]', target: '_'}}]}]");
    let twice = twice.replace(r#""a/b":"x-value","a b":"y-value""#, r#""a/b":"x-value""#);
    let out = ok(&render_stdin(&[], &twice));
    assert!(out.contains("a-b: eC12YWx1ZQ==") && out.contains("a_b: eC12YWx1ZQ==") && out.contains("a.b: ei12YWx1ZQ=="), "{out}");
}

#[test]
fn privileged_secret_types_and_the_service_account_annotation_are_refused_from_every_source() {
    let cases = [
        (
            "target: {template: {type: kubernetes.io/service-account-token, data: {token: x}}}\n  data: [{secretKey: t, remoteRef: {key: token}}]",
            "spec.target.template.type: Secret type `kubernetes.io/service-account-token` is refused",
        ),
        (
            "target: {template: {type: bootstrap.kubernetes.io/token, data: {token-id: abcdef}}}\n  data: [{secretKey: t, remoteRef: {key: token}}]",
            "spec.target.template.type: Secret type `bootstrap.kubernetes.io/token` is refused",
        ),
        (
            "target: {template: {metadata: {annotations: {kubernetes.io/service-account.name: default}}}}\n  data: [{secretKey: t, remoteRef: {key: token}}]",
            "spec.target.template: the annotation `kubernetes.io/service-account.name` is refused",
        ),
        (
            "target: {template: {templateFrom: [{target: Annotations, literal: 'kubernetes.io/service-account.name: default'}]}}\n  data: [{secretKey: t, remoteRef: {key: token}}]",
            "spec.target.template: the annotation `kubernetes.io/service-account.name` is refused",
        ),
    ];
    for (spec, expected) in cases {
        expect_spec_error(spec, expected);
    }
    // Copied from the ExternalSecret's own annotations.
    let input = format!("{STORE}---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: es, namespace: team-a, annotations: {{kubernetes.io/service-account.name: default}}}}\nspec:\n  secretStoreRef: {{name: fake}}\n  data: [{{secretKey: t, remoteRef: {{key: token}}}}]\n");
    let err = failed(&render_stdin(&[], &input));
    assert!(err.contains("metadata.annotations: the annotation `kubernetes.io/service-account.name` is refused"), "{err}");
}

#[test]
fn a_stream_that_starts_with_a_yaml_directive_renders() {
    let input = format!("%YAML 1.1\n---\n{STORE}---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: es, namespace: team-a}}\nspec:\n  secretStoreRef: {{name: fake}}\n  data: [{{secretKey: t, remoteRef: {{key: token}}}}]\n");
    let out = ok(&render_stdin(&[], &input));
    assert!(out.contains("t: dG9rLXZhbHVlLTE="), "{out}");
}

#[test]
fn operator_files_take_only_an_explicit_namespace_never_the_applications() {
    let dir = tempdir();
    let store = STORE.replace("metadata: {name: fake, namespace: team-a}", "metadata: {name: fake}");
    let stores = write(dir.path(), "stores/store.yaml", &store).display().to_string();
    let es = "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es}\nspec:\n  secretStoreRef: {name: fake}\n  data: [{secretKey: a, remoteRef: {key: token}}]\n";
    // Under Argo CD a namespaceless operator store would otherwise serve every Application.
    let mut c = extsecret(&["render", "--stores", &stores]);
    c.env("ARGOCD_APP_NAMESPACE", "team-b").env("ARGOCD_APP_PROJECT_NAME", "team-b");
    let err = failed(&run(c, Some(es.as_bytes())));
    assert!(err.contains("store.yaml: document 0: SecretStore fake: an object of an operator file without metadata.namespace takes --namespace / EXTSECRET_NAMESPACE, which is not set (never the Application's namespace); set its metadata.namespace, or serve several namespaces with a ClusterSecretStore and spec.conditions"), "{err}");
    // An explicit --namespace places it (and the unbound single-tenant render keeps working).
    let out = ok(&run(extsecret(&["render", "--stores", &stores, "--namespace", "team-c"]), Some(es.as_bytes())));
    assert!(out.contains("a: dG9rLXZhbHVlLTE="), "{out}");
    let mut c = extsecret(&["render", "--stores", &stores]);
    c.env("EXTSECRET_NAMESPACE", "team-b").env("ARGOCD_APP_NAMESPACE", "team-b");
    assert!(ok(&run(c, Some(es.as_bytes()))).contains("a: dG9rLXZhbHVlLTE="));
    // Credential Secrets follow the same rule.
    let creds = write(dir.path(), "creds/c.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: aws}\nstringData: {key: v}\n")
        .display()
        .to_string();
    let mut c = extsecret(&["render", "--stores", &stores, "--namespace", "team-c", "--credentials", &creds]);
    c.env("ARGOCD_APP_NAMESPACE", "team-c");
    assert!(ok(&run(c, Some(es.as_bytes()))).contains("a: dG9rLXZhbHVlLTE="));
    let mut c = extsecret(&["render", "--credentials", &creds]);
    c.env("ARGOCD_APP_NAMESPACE", "team-c");
    let err = failed(&run(c, Some(format!("{}---\n{es}", STORE.replace("team-a", "team-c")).as_bytes())));
    assert!(err.contains("Secret aws: an object of an operator file without metadata.namespace takes --namespace / EXTSECRET_NAMESPACE, which is not set"), "{err}");
}

#[test]
fn a_render_under_argo_cd_is_bound_to_the_application_namespace() {
    let es = |ns: &str| {
        format!("---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: es, namespace: {ns}}}\nspec:\n  secretStoreRef: {{name: fake}}\n  data: [{{secretKey: a, remoteRef: {{key: token}}}}]\n")
    };
    // `kustomize build | extsecret render` in a CMP: team-b's app carries team-a's store and names it.
    let mut c = extsecret(&["render"]);
    c.env("ARGOCD_APP_NAMESPACE", "team-b").env("ARGOCD_APP_PROJECT_NAME", "team-b").env("ARGOCD_APP_NAME", "b");
    let err = failed(&run(c, Some(format!("{STORE}{}", es("team-a")).as_bytes())));
    assert!(err.contains("<stdin>: document 0: SecretStore team-a/fake: metadata.namespace: namespace `team-a` is refused: Argo CD Application `b` (project `team-b`) deploys to namespace `team-b`"), "{err}");
    assert!(err.contains("<stdin>: document 1: ExternalSecret team-a/es: metadata.namespace: namespace `team-a` is refused"), "{err}");
    // Without Argo CD's environment the same stream is a legitimate single-tenant render.
    assert!(ok(&render_stdin(&[], &format!("{STORE}{}", es("team-a")))).contains("namespace: team-a"));
    // team-b's Application whose destination is team-a on another cluster (Argo CD passes only the
    // namespace): the operator's `!team-a` for project team-b excludes it all the same.
    let dir = tempdir();
    let projects = write(dir.path(), "projects.yaml", "team-b: [team-b, 'team-b-*', '!team-a']\n");
    let mut c = extsecret(&["render", "--project-namespaces", projects.to_str().unwrap()]);
    c.env("ARGOCD_APP_NAMESPACE", "team-a").env("ARGOCD_APP_PROJECT_NAME", "team-b").env("ARGOCD_APP_NAME", "b");
    let err = failed(&run(c, Some(format!("{STORE}{}", es("team-a")).as_bytes())));
    assert!(err.contains("ExternalSecret team-a/es: metadata.namespace: namespace `team-a` is refused"), "{err}");
    assert!(!err.contains("dG9r"), "{err}");
}

#[test]
fn confine_to_keeps_reads_inside_a_folder() {
    let dir = tempdir();
    let outside = write(
        dir.path(),
        "private/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: private, namespace: x}\ndata: {k: cHJpdmF0ZS12YWx1ZQ==}\n",
    );
    let app = dir.path().join("app");
    write(&app, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n");
    std::os::unix::fs::symlink(&outside, app.join("link.yaml")).unwrap();
    let app_arg = app.display().to_string();
    // Without the switch links are followed (a user's own files).
    assert!(ok(&run(extsecret(&["render", &app_arg]), None)).contains("cHJpdmF0ZS12YWx1ZQ=="));
    for args in [vec!["render", "--confine-to", &app_arg, &app_arg], vec!["render", "--confine-to", &app_arg, "link.yaml"]] {
        let mut c = extsecret(&args);
        c.current_dir(&app);
        let err = failed(&run(c, None));
        assert!(
            err.contains("link.yaml: refused: a symbolic link leads outside") && err.contains("(--confine-to / EXTSECRET_CONFINE_TO)"),
            "{err}"
        );
        assert!(!err.contains("cHJpdmF0ZS12YWx1ZQ==") && !err.contains("private/secret.yaml"), "{err}");
    }
}

#[test]
fn a_credential_read_into_the_wrong_field_is_never_quoted() {
    // A store may point `tenantId` at any key of its credential Secret: the SDK's message
    // (`invalid tenant ID <value>`) quoted the client secret before the fix.
    let dir = tempdir();
    let creds = write(
        dir.path(),
        "creds.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: az, namespace: team-a}\nstringData: {id: 00000000-0000-0000-0000-000000000000, secret: 'Xy8Q~SECRET_CANARY.abc'}\n",
    );
    let input = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: azure, namespace: team-a}\nspec:\n  provider:\n    azurekv:\n      vaultUrl: https://team-a.vault.azure.net\n      authSecretRef:\n        tenantId: {name: az, key: secret}\n        clientId: {name: az, key: id}\n        clientSecret: {name: az, key: secret}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es, namespace: team-a}\nspec:\n  secretStoreRef: {name: azure}\n  data: [{secretKey: a, remoteRef: {key: k}}]\n";
    let err = failed(&render_stdin(&["--timeout", "5s", "--credentials", creds.to_str().unwrap()], input));
    assert!(err.contains("spec.provider.azurekv.authSecretRef.tenantId: not a valid tenant id (a GUID or a domain name)"), "{err}");
    assert!(!err.contains("SECRET_CANARY"), "a credential leaked: {err}");
}

#[test]
fn control_characters_of_the_input_are_shown_escaped_in_errors() {
    // A key that would forge an `error:` line, clear it with a terminal sequence and reverse the
    // text after it, if printed raw (Argo CD UI, logs, terminals).
    let spec = r#"data: [{secretKey: a, remoteRef: {key: "x`\nerror: all good, 0 problem(s)\e[2K\u2028\u202e"}}]"#;
    let input = format!("{STORE}---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: es, namespace: team-a}}\nspec:\n  secretStoreRef: {{name: fake}}\n  {spec}\n");
    let escaped = r"x`\nerror: all good, 0 problem(s)\u{1b}[2K\u{2028}\u{202e}";
    let raw = |text: &str| text.contains(['\u{1b}', '\u{2028}', '\u{202e}']) || text.lines().any(|l| l.starts_with("error: all good"));
    let err = failed(&render_stdin(&[], &input));
    assert!(err.contains(&format!("ExternalSecret team-a/es: spec.data[0].remoteRef.key: [NotFound] secret `{escaped}`")), "{err}");
    assert!(!raw(&err), "{err:?}");

    // The KRM function: on stderr and in the result message kpt and kustomize print.
    let items: String =
        input.split("---\n").map(|doc| format!("- {}", doc.trim_end().replace('\n', "\n  "))).collect::<Vec<_>>().join("\n");
    let list = format!("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n{items}\n");
    let o = run(extsecret(&["krm"]), Some(list.as_bytes()));
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
    let out: serde_json::Value = serde_saphyr::from_str(&common::stdout(&o)).expect("a ResourceList");
    let message = out["results"][0]["message"].as_str().expect("an error result");
    assert!(message.contains(&format!("[NotFound] secret `{escaped}`")), "{message}");
    assert!(!raw(message) && !raw(&common::stderr(&o)), "{message:?}");
}
