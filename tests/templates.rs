//! Templates end to end through `extsecret render` on the fake store: ESO's documented template
//! examples (docker config JSON, TLS from PEM, templateFrom ConfigMap and literal, labels and
//! annotations, mergePolicy Merge, rewrite transform) with exact output bytes, the same cases in
//! handlebars, and the missing-key and unsupported-construct errors.

mod common;

use base64::Engine as _;
use common::{extsecret, failed, ok, run};

const STORE: &str = r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: fake, namespace: apps}
spec:
  provider:
    fake:
      data:
        - {key: registry, value: '{"host":"registry.example.com","username":"robot","password":"pa$$-VALUE-1"}'}
        - {key: db, value: '{"user":"admin","password":"db-VALUE-2","port":5432,"cfg":"{\"appId\":12345678}"}'}
        - {key: app-name, value: checkout}
        - {key: pem-bundle, value: "junk\n-----BEGIN CERTIFICATE-----\nQ0VSVElGSUNBVEUtMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1Njc4OTA=\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nS0VZLVZBTFVFLTM=\n-----END PRIVATE KEY-----\n"}
        - {key: keystore, value: AAH+/wpiaW5hcnk=}
"#;

fn es(name: &str, annotations: &str, spec: &str) -> String {
    format!("---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata:\n  name: {name}\n  namespace: apps\n  labels: {{team: shop}}\n{annotations}spec:\n  secretStoreRef: {{name: fake}}\n{spec}")
}

fn render(extra: &str) -> std::process::Output {
    run(extsecret(&["render", "-o", "json"]), Some(format!("{STORE}{extra}").as_bytes()))
}

/// The rendered Secrets as (name, type, labels, annotations, data decoded to text).
fn secrets(out: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v["items"].as_array().unwrap().iter().filter(|i| i["kind"] == "Secret").cloned().collect()
}

fn data(secret: &serde_json::Value, key: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(secret["data"][key].as_str().unwrap_or_else(|| panic!("no key {key} in {secret}")))
        .unwrap()
}

fn text(secret: &serde_json::Value, key: &str) -> String {
    String::from_utf8(data(secret, key)).unwrap()
}

const HB: &str = "  annotations: {extsecret.io/template-engine: handlebars}\n";

#[test]
fn docker_config_json_as_in_eso_docs() {
    let spec = r#"  dataFrom: [{extract: {key: registry}}]
  target:
    name: regcred
    template:
      type: kubernetes.io/dockerconfigjson
      data:
        .dockerconfigjson: '{"auths":{"{{ .host }}":{"username":"{{ .username }}","password":"{{ .password }}","auth":"{{ printf "%s:%s" .username .password | b64enc }}"}}}'
"#;
    let hb_spec = spec
        .replace(r#"{{ .host }}"#, "{{host}}")
        .replace("{{ .username }}", "{{username}}")
        .replace("{{ .password }}", "{{password}}")
        .replace(r#"{{ printf "%s:%s" .username .password | b64enc }}"#, r#"{{b64enc (printf "%s:%s" username password)}}"#);
    let out = ok(&render(&format!("{}{}", es("go", "", spec), es("hb", HB, &hb_spec).replace("name: regcred", "name: regcred-hb"))));
    let expected = r#"{"auths":{"registry.example.com":{"username":"robot","password":"pa$$-VALUE-1","auth":"cm9ib3Q6cGEkJC1WQUxVRS0x"}}}"#;
    for s in secrets(&out) {
        assert_eq!(s["type"], "kubernetes.io/dockerconfigjson");
        assert_eq!(text(&s, ".dockerconfigjson"), expected, "{}", s["metadata"]["name"]);
        assert_eq!(s["data"].as_object().unwrap().len(), 1);
        // No template metadata: the ExternalSecret's labels are kept; the engine annotation is not copied.
        assert_eq!(s["metadata"]["labels"]["team"], "shop");
        assert!(s["metadata"].get("annotations").is_none(), "{s}");
    }
}

#[test]
fn tls_from_pem_with_filter_pem() {
    let spec = r#"  data: [{secretKey: bundle, remoteRef: {key: pem-bundle}}]
  target:
    template:
      type: kubernetes.io/tls
      data:
        tls.crt: '{{ .bundle | filterPEM "CERTIFICATE" }}'
        tls.key: '{{ .bundle | filterPEM "PRIVATE KEY" }}'
"#;
    let hb = spec
        .replace(r#"{{ .bundle | filterPEM "CERTIFICATE" }}"#, r#"{{filterPEM "CERTIFICATE" bundle}}"#)
        .replace(r#"{{ .bundle | filterPEM "PRIVATE KEY" }}"#, r#"{{filterPEM "PRIVATE KEY" bundle}}"#);
    let out = ok(&render(&format!("{}{}", es("tls", "", spec), es("tls-hb", HB, &hb))));
    for s in secrets(&out) {
        assert_eq!(s["type"], "kubernetes.io/tls");
        assert_eq!(
            text(&s, "tls.crt"),
            "-----BEGIN CERTIFICATE-----\nQ0VSVElGSUNBVEUtMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2\nNzg5MDEyMzQ1Njc4OTA=\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(text(&s, "tls.key"), "-----BEGIN PRIVATE KEY-----\nS0VZLVZBTFVFLTM=\n-----END PRIVATE KEY-----\n");
        assert!(s["data"].get("bundle").is_none());
    }
}

#[test]
fn template_from_config_map_stays_in_the_output() {
    let cm = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: grafana-tpl, namespace: apps}\ndata:\n  config.yaml: |\n    datasources:\n    - type: prometheus\n      basicAuthUser: {{ .user }}\n      basicAuthPassword: {{ .password }}\n  hb.yaml: |\n    user: {{user}}\n";
    let spec = "  dataFrom: [{extract: {key: db}}]\n  target:\n    template:\n      templateFrom:\n        - configMap: {name: grafana-tpl, items: [{key: config.yaml}]}\n";
    let hb = "  dataFrom: [{extract: {key: db}}]\n  target:\n    template:\n      templateFrom:\n        - configMap: {name: grafana-tpl, items: [{key: hb.yaml, templateAs: KeysAndValues}]}\n";
    let out = ok(&render(&format!("{cm}{}{}", es("grafana", "", spec), es("grafana-hb", HB, hb))));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["items"][0]["kind"], "ConfigMap", "a template source stays in the output");
    let s = secrets(&out);
    assert_eq!(text(&s[0], "config.yaml"), "datasources:\n- type: prometheus\n  basicAuthUser: admin\n  basicAuthPassword: db-VALUE-2\n");
    assert_eq!(s[0]["data"].as_object().unwrap().len(), 1, "Replace: provider data is not kept");
    assert_eq!(text(&s[1], "user"), "admin");
    assert_eq!(s[1]["data"].as_object().unwrap().len(), 1);
}

#[test]
fn literal_keys_and_values_labels_annotations_and_precedence() {
    let spec = r#"  dataFrom: [{extract: {key: db}}]
  data: [{secretKey: app, remoteRef: {key: app-name}}]
  target:
    template:
      metadata:
        labels: {app.kubernetes.io/name: '{{ .app }}'}
        annotations: {db-user: '{{ .user | upper }}'}
      templateFrom:
        - literal: |
            {{- range $k, $v := . }}
            {{- if ne $k "cfg" }}
            copy-{{ $k }}: {{ $v | quote }}
            {{- end }}
            {{- end }}
        - target: Annotations
          literal: "port: '{{ .port }}'"
        - literal: "copy-user: overridden-by-data"
      data:
        copy-user: '{{ .user }}-from-data'
        app-id: '{{ (.cfg | fromJson).appId }}'
"#;
    let out = ok(&render(&es("lit", "", spec)));
    let s = &secrets(&out)[0];
    let keys: Vec<&String> = s["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["app-id", "copy-app", "copy-password", "copy-port", "copy-user"]);
    assert_eq!(text(s, "copy-user"), "admin-from-data", "template.data wins over templateFrom");
    assert_eq!(text(s, "copy-port"), "5432");
    assert_eq!(text(s, "copy-password"), "db-VALUE-2");
    assert_eq!(text(s, "app-id"), "12345678", "fromJson keeps integers as written (ESO would print 1.2345678e+07)");
    assert_eq!(
        s["metadata"]["labels"],
        serde_json::json!({"app.kubernetes.io/name": "checkout"}),
        "template labels replace the copied ones"
    );
    assert_eq!(s["metadata"]["annotations"], serde_json::json!({"db-user": "ADMIN", "port": "5432"}));
}

#[test]
fn merge_policy_keeps_provider_data_and_binary_survives() {
    let spec = r#"  data:
    - {secretKey: user, remoteRef: {key: db, property: user}}
    - {secretKey: ks, remoteRef: {key: keystore}}
  target:
    template:
      mergePolicy: Merge
      data:
        greeting: 'hello {{ .user }}'
        keystore.bin: '{{ .ks | b64dec }}'
        roundtrip: '{{ .ks | b64dec | b64enc }}'
"#;
    let hb = spec
        .replace("hello {{ .user }}", "hello {{user}}")
        .replace("{{ .ks | b64dec }}", "{{b64dec ks}}")
        .replace("{{ .ks | b64dec | b64enc }}", "{{b64enc (b64dec ks)}}");
    let out = ok(&render(&format!("{}{}", es("merge", "", spec), es("merge-hb", HB, &hb))));
    for s in secrets(&out) {
        assert_eq!(text(&s, "user"), "admin");
        assert_eq!(text(&s, "greeting"), "hello admin");
        assert_eq!(data(&s, "keystore.bin"), vec![0x00, 0x01, 0xfe, 0xff, b'\n', b'b', b'i', b'n', b'a', b'r', b'y']);
        assert_eq!(text(&s, "roundtrip"), "AAH+/wpiaW5hcnk=");
        assert_eq!(s["type"], "Opaque");
    }
}

#[test]
fn rewrite_transform_renames_keys() {
    let spec = "  dataFrom:\n    - extract: {key: db}\n      rewrite:\n        - transform: {template: '{{ .value | upper }}'}\n        - regexp: {source: '^(.*)$', target: 'DB_${1}'}\n";
    let hb = spec.replace("{{ .value | upper }}", "{{upper value}}");
    let out = ok(&render(&format!("{}{}", es("rw", "", spec), es("rw-hb", HB, &hb))));
    for s in secrets(&out) {
        let keys: Vec<&String> = s["data"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["DB_CFG", "DB_PASSWORD", "DB_PORT", "DB_USER"]);
    }
}

#[test]
fn missing_keys_and_unsupported_constructs_fail_naming_the_template_without_values() {
    let cases = [
        (
            "data: {k: '{{ .DOES_NOT_EXIST }}'}",
            "spec.target.template.data.k: template: data.k:1:4: map has no entry for key: DOES_NOT_EXIST",
        ),
        (
            "data: {k: '{{ .missing | default \"x\" }}'}",
            "spec.target.template.data.k: template: data.k:1:4: map has no entry for key: missing",
        ),
        ("data: {k: '{{ .user | filterCertChain \"leaf\" }}'}", "filterCertChain: this ESO function is not supported yet"),
        ("data: {k: '{{ .user | nosuch }}'}", "template: data.k:1:12: undefined function: nosuch"),
        ("data: {k: '{{ env \"HOME\" }}'}", "env: not available"),
        ("data: {k: '{{ .password | b64dec }}'}", "b64dec: the input is not valid base64"),
        ("data: {k: '{{ if }}'}", "spec.target.template.data.k: template: data.k:1"),
        (
            "templateFrom: [{configMap: {name: nowhere, items: [{key: a}]}}]",
            "templateFrom[0].configMap.name: no ConfigMap `nowhere` in the input stream in namespace `apps`",
        ),
        ("templateFrom: [{literal: 'not: [a map'}]", "templateFrom[0].literal: the rendered text is not a YAML map"),
        (
            "templateFrom: [{target: Spec, literal: 'a: b'}]",
            "templateFrom[0].target: target `spec` is not one of Data, Labels, Annotations",
        ),
    ];
    for (template, expected) in cases {
        let spec = format!("  dataFrom: [{{extract: {{key: db}}}}]\n  target:\n    template:\n      {template}\n");
        let err = failed(&render(&es("bad", "", &spec)));
        assert!(err.contains(expected), "expected `{expected}` in:\n{err}");
        assert!(err.contains("ExternalSecret apps/bad"), "{err}");
        for value in ["db-VALUE-2", "admin", "12345678"] {
            assert!(!err.contains(value), "value leaked: {value}\n{err}");
        }
    }
    // `index` yields an empty value for an absent key, so `default` applies (ESO's idiom, #3843).
    let spec =
        "  dataFrom: [{extract: {key: db}}]\n  target:\n    template:\n      data: {k: '{{ index . \"missing\" | default \"x\" }}'}\n";
    assert_eq!(text(&secrets(&ok(&render(&es("idx", "", spec))))[0], "k"), "x");
    // handlebars is strict too, and an unknown engine is refused.
    let spec = "  dataFrom: [{extract: {key: db}}]\n  target:\n    template:\n      data: {k: '{{missing}}'}\n";
    let err = failed(&render(&es("hbmiss", HB, spec)));
    assert!(err.contains("spec.target.template.data.k: template: data.k"), "{err}");
    let err = failed(&render(&es("eng", "  annotations: {extsecret.io/template-engine: jinja}\n", spec)));
    assert!(err.contains("metadata.annotations: annotation extsecret.io/template-engine: unknown engine `jinja`"), "{err}");
}

#[test]
fn template_from_secret_literal_and_labels_in_handlebars() {
    // A Secret of the stream as a template source (its data is base64, as in any Secret).
    let tpl = base64::engine::general_purpose::STANDARD.encode("url: postgres://{{user}}@db:{{port}}/app\n");
    let source = format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: dsn-tpl, namespace: apps}}\ndata:\n  dsn.yaml: {tpl}\n");
    let spec = r#"  dataFrom: [{extract: {key: db}}]
  target:
    name: dsn
    template:
      metadata:
        labels: {app: '{{lower "CHECKOUT"}}'}
        annotations: {user: '{{user}}'}
      templateFrom:
        - secret: {name: dsn-tpl, items: [{key: dsn.yaml, templateAs: KeysAndValues}]}
        - target: Labels
          literal: "db-port: '{{port}}'"
        - literal: |
            {{#each this}}
            copy-{{@key}}: {{quote this}}
            {{/each}}
"#;
    let out = ok(&render(&format!("{source}{}", es("dsn", HB, spec))));
    let s = &secrets(&out)[1];
    assert_eq!(s["metadata"]["name"], "dsn");
    let keys: Vec<&String> = s["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["copy-cfg", "copy-password", "copy-port", "copy-user", "url"]);
    assert_eq!(text(s, "url"), "postgres://admin@db:5432/app");
    assert_eq!(text(s, "copy-cfg"), r#"{"appId":12345678}"#);
    assert_eq!(s["metadata"]["labels"], serde_json::json!({"app": "checkout", "db-port": "5432"}));
    assert_eq!(s["metadata"]["annotations"], serde_json::json!({"user": "admin"}));
}

#[test]
fn rewrite_transforms_share_the_external_secret_budget() {
    // Each transform builds about 3 MB on the way to its key; the four keys of `db` together
    // pass 8 MiB.
    let transform =
        r#"{{ $s := indent 4000 "" }}{{ range $i := 8 }}{{ $s = printf "%s%s" $s $s }}{{ end }}{{ $t := print $s }}{{ .value }}"#;
    let spec = format!("  dataFrom:\n    - extract: {{key: db}}\n      rewrite: [{{transform: {{template: '{transform}'}}}}]\n");
    let err = failed(&render(&es("rw-budget", "", &spec)));
    assert!(
        err.contains("ExternalSecret apps/rw-budget: spec.dataFrom[0].rewrite[0].transform.template: template: rewrite.transform")
            && err.contains("the templates of this ExternalSecret would build more than 8 MiB of text"),
        "{err}"
    );
}

#[test]
fn a_long_running_template_is_stopped_by_the_deadline() {
    // Nested loops of 3,000 × 3,000 × 3,000 with empty bodies: within the CPU budget for more
    // than a second, so the run's deadline ends it first (template work runs on a thread the
    // deadline outlives).
    let spec = format!(
        "  dataFrom: [{{extract: {{key: db}}}}]\n  target:\n    template:\n      data: {{k: '{}'}}\n",
        r#"{{#with (splitList " " (indent 3000 "")) as |l|}}{{#each l}}{{#each l}}{{#each l}}{{/each}}{{/each}}{{/each}}{{/with}}"#
    );
    let start = std::time::Instant::now();
    let out = run(extsecret(&["render", "-o", "json", "--timeout", "1s"]), Some(format!("{STORE}{}", es("slow", HB, &spec)).as_bytes()));
    let err = failed(&out);
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "took {:?}", start.elapsed());
    assert!(err.contains("deadline of 1s exceeded"), "{err}");
}

/// Binds `$s` to 327,680 bytes of text (320 KiB).
const S320K: &str = r#"{{ $s := "0123456789" }}{{ range $i := 15 }}{{ $s = printf "%s%s" $s $s }}{{ end }}"#;

/// Renders one ExternalSecret per `(name, annotations, template)`, each templating `data.k` from
/// the `db` secret; returns the failed run's stderr.
fn render_failing(cases: &[(&str, &str, String)]) -> String {
    let docs: String = cases
        .iter()
        .map(|(name, annotations, template)| {
            let spec = format!(
                "  dataFrom: [{{extract: {{key: db}}}}]\n  target:\n    template:\n      data:\n        k: '{}'\n",
                template.replace('\'', "''")
            );
            es(name, annotations, &spec)
        })
        .collect();
    failed(&render(&docs))
}

/// The error line of ExternalSecret `name` (it names the template field).
fn error_of<'a>(err: &'a str, name: &str) -> &'a str {
    err.lines().find(|l| l.contains(&format!("ExternalSecret apps/{name}: "))).unwrap_or_else(|| panic!("no error for {name} in:\n{err}"))
}

#[test]
fn template_bombs_are_ordinary_errors_naming_the_external_secret_and_field() {
    // 40 templates, each calling the one below twice: 2^40 calls that neither call a function
    // nor write a byte.
    let dag = (1..=40).fold(r#"{{define "a0"}}{{end}}"#.to_string(), |acc, i| {
        format!(r#"{acc}{{{{define "a{i}"}}}}{{{{template "a{}" .}}}}{{{{template "a{}" .}}}}{{{{end}}}}"#, i - 1, i - 1)
    }) + r#"{{template "a40" .}}"#;
    // handlebars has no assignment: each `with` level binds the doubled text.
    let hb_double = {
        let mut t = "{{#with user as |x0|}}".to_string();
        for i in 1..=34 {
            t += &format!(r#"{{{{#with (printf "%s%s" x{p} x{p}) as |x{i}|}}}}"#, p = i - 1);
        }
        t += "{{x34}}";
        t += &"{{/with}}".repeat(35);
        t
    };
    let cases = [
        ("doubling", "", r#"{{ $x := .user }}{{ range $i := 34 }}{{ $x = printf "%s%s" $x $x }}{{ end }}{{ $x }}"#.to_string()),
        ("doubling-hb", HB, hb_double),
        ("print", "", r#"{{ $x := .user }}{{ range $i := 34 }}{{ $x = print $x $x }}{{ end }}{{ $x }}"#.to_string()),
        ("width", "", r#"{{ printf "%0999999999d" 7 }}"#.to_string()),
        ("recursion", "", r#"{{define "a"}}{{template "a" .}}{{template "a" .}}{{end}}{{template "a" .}}"#.to_string()),
        ("dag", "", dag),
        ("range", "", "{{ range $i := 1000000000 }}{{ end }}".to_string()),
        ("output", "", "{{ range $i := 900000 }}{{ $.password }}{{ end }}".to_string()),
        (
            "output-hb",
            HB,
            r#"{{#each (splitList " " (indent 4000 ""))}}{{#each (splitList " " (indent 4000 ""))}}{{@root.password}}{{/each}}{{/each}}"#
                .to_string(),
        ),
        (
            "each-hb",
            HB,
            r#"{{#with (splitList " " (indent 3000 "")) as |l|}}{{#each l}}{{#each l}}{{#each l}}{{/each}}{{/each}}{{/each}}{{/with}}"#
                .to_string(),
        ),
        ("json", "", r#"{{ $l := list .user }}{{ range $i := 40 }}{{ $l = list $l $l }}{{ end }}{{ toJson $l }}"#.to_string()),
        ("shared", "", r#"{{ $l := list .user }}{{ range $i := 40 }}{{ $l = list $l $l }}{{ end }}{{ $l }}"#.to_string()),
        ("deep", "", r#"{{ $l := list .user }}{{ range $i := 100 }}{{ $l = list $l }}{{ end }}{{ len $l }}"#.to_string()),
        ("indent", "", r#"{{ $n := "\n" }}{{ range $i := 12 }}{{ $n = printf "%s%s" $n $n }}{{ end }}{{ indent 4096 $n }}"#.to_string()),
        ("replace", "", format!(r#"{S320K}{{{{ replace "" "0123456789" $s }}}}"#)),
        ("join", "", format!(r#"{S320K}{{{{ join "," (list $s $s $s $s) }}}}"#)),
        ("regex", "", format!(r#"{S320K}{{{{ regexReplaceAll "(.)" $s "$1$1$1$1" }}}}"#)),
        ("nesting", "", format!("{}x{}", "{{if 1}}".repeat(3000), "{{end}}".repeat(3000))),
        ("nesting-hb", HB, format!("{}x{}", "{{#if 1}}".repeat(3000), "{{/if}}".repeat(3000))),
        ("subexpressions-hb", HB, format!("{{{{lower {}user{}}}}}", "(lower ".repeat(3000), ")".repeat(3000))),
        // A quote inside a comment once hid everything up to the next such comment from the
        // nesting check and the loop checkpoints (a stack overflow; a loop never stopped).
        ("nesting-hb-comment", HB, format!("{{{{!-- \" --}}}}{}x{}{{{{!-- \" --}}}}", "{{#if 1}}".repeat(3000), "{{/if}}".repeat(3000))),
        (
            "each-hb-comment",
            HB,
            r#"{{!-- " --}}{{#with (splitList " " (indent 3000 "")) as |l|}}{{#each l}}{{#each l}}{{#each l}}{{/each}}{{/each}}{{/each}}{{/with}}{{!-- " --}}"#
                .to_string(),
        ),
        // Helper arguments and results are copied whole between the engines: 2^k items for k
        // nested `with (list this this)` once went uncharged to an allocation failure.
        ("copies-hb", HB, format!("{}x{}", "{{#with (list this this)}}".repeat(24), "{{/with}}".repeat(24))),
    ];
    let start = std::time::Instant::now();
    let err = render_failing(&cases);
    assert!(start.elapsed() < std::time::Duration::from_secs(60), "took {:?}", start.elapsed());
    let expected = [
        ("doubling", "printf: the result would be longer than 1 MiB, the limit for one string"),
        ("doubling-hb", "printf: the result would be longer than 1 MiB"),
        ("print", "print: the result would be longer than 1 MiB"),
        ("width", "printf: the result would be longer than 1 MiB"),
        ("recursion", "recursion limit exceeded"),
        ("dag", "execution: the templates of this ExternalSecret used more than 2 s of CPU time"),
        ("range", "range iteration budget exhausted"),
        ("output", "output: the result would be longer than 1 MiB"),
        ("output-hb", "output: the result would be longer than 1 MiB"),
        ("each-hb", "execution: the templates of this ExternalSecret used more than 2 s of CPU time"),
        ("json", "toJson: the result would be longer than 1 MiB"),
        ("shared", "output: the result would be longer than 1 MiB"),
        ("deep", "list: lists and maps may nest at most 64 deep"),
        ("indent", "indent: the result would be longer than 1 MiB"),
        ("replace", "replace: the result would be longer than 1 MiB"),
        ("join", "join: the result would be longer than 1 MiB"),
        ("regex", "regexReplaceAll: the result would be longer than 1 MiB"),
        ("nesting", "template nesting depth exceeded 100"),
        ("nesting-hb", "blocks and subexpressions may nest at most 64 deep"),
        ("nesting-hb-comment", "blocks and subexpressions may nest at most 64 deep"),
        ("each-hb-comment", "execution: the templates of this ExternalSecret used more than 2 s of CPU time"),
        ("copies-hb", "list: the templates of this ExternalSecret would build more than 8 MiB of text"),
        ("subexpressions-hb", "blocks and subexpressions may nest at most 64 deep"),
    ];
    for (name, message) in expected {
        let line = error_of(&err, name);
        assert!(line.starts_with("error: "), "{line}");
        assert!(line.contains(": spec.target.template.data.k: template: data.k"), "{line}");
        assert!(line.contains(message), "expected `{message}` in:\n{line}");
        assert!(!line.contains("admin") && !line.contains("db-VALUE-2"), "{line}");
    }
}

#[test]
fn one_external_secret_budget_is_shared_by_its_templates() {
    // Ten keys of 900 KB each: each fits one string, together over 8 MiB built.
    let keys: String =
        (0..10).map(|i| format!("        k{i}: '{{{{ range $i := 225 }}}}{{{{ indent 4000 \"{i}\" }}}}{{{{ end }}}}'\n")).collect();
    let spec = format!("  dataFrom: [{{extract: {{key: db}}}}]\n  target:\n    template:\n      data:\n{keys}");
    let err = failed(&render(&es("total", "", &spec)));
    assert!(err.contains("the templates of this ExternalSecret would build more than 8 MiB of text"), "{err}");
    assert!(err.contains("ExternalSecret apps/total: spec.target.template.data.k"), "{err}");
}

#[test]
fn rendered_labels_keys_and_sizes_are_checked_without_quoting_them() {
    let cases = [
        ("templateFrom: [{target: Labels, literal: \"x: '{{ .password }}!!'\"}]", "a rendered label is not valid"),
        ("templateFrom: [{literal: \"'{{ .password }}!!': a\"}]", "a rendered data key is not a valid Secret key"),
        (
            "data: {a: '{{ range $i := 175 }}{{ indent 4000 \"\" }}{{ end }}', b: '{{ range $i := 175 }}{{ indent 4000 \"\" }}{{ end }}'}",
            "over Kubernetes' limit of 1048576 bytes",
        ),
        ("data: {k: '{{ indent 99999999999 .user }}'}", "width must be an integer from 0 to 4096"),
        ("templateFrom: [{target: Labels, literal: 'a: b'}]", "the template produced no data"),
    ];
    for (template, expected) in cases {
        let spec = format!("  dataFrom: [{{extract: {{key: db}}}}]\n  target:\n    template:\n      {template}\n");
        let err = failed(&render(&es("bad", "", &spec)));
        assert!(err.contains(expected), "expected `{expected}` in:\n{err}");
        assert!(!err.contains("db-VALUE-2"), "{err}");
    }
}

/// A fake-store JSON secret whose every operand is a canary: a number, a float, a boolean and a
/// string, also inside a list and a map.
const CANARY_STORE: &str = r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: fake, namespace: apps}
spec:
  provider:
    fake:
      data:
        - {key: canary, value: '{"n":918273,"f":3.14159,"b":true,"s":"CANARY-WORD-61","l":[918273,3.14159],"m":{"k":"CANARY-WORD-61"}}'}
"#;

const CANARIES: &[&str] = &["918273", "3.14159", "true", "CANARY", "Q0FOQVJZ"];

#[test]
fn every_template_function_fails_without_quoting_an_operand() {
    // (case, engine annotations, template using `$c` (go) or `j` (handlebars), expected text)
    let go = |t: &str| format!("{{{{ $c := .j | fromJson }}}}{t}");
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("len", "", go("{{ len $c.n }}"), "len: cannot take the length of a int"),
        ("index", "", go("{{ index $c.l $c.n }}"), "index: the index is out of range"),
        ("index-type", "", go("{{ index $c.n $c.n }}"), "index: the index is out of range or of the wrong type"),
        ("slice", "", go("{{ slice $c.s 0 $c.n }}"), "slice: an index is out of range"),
        ("slice-list", "", go("{{ slice $c.l 1 2 $c.n }}"), "slice: an index is out of range"),
        ("slice-type", "", go("{{ slice $c.f 1 }}"), "slice: cannot slice a float64"),
        ("printf", "", go("{{ printf $c.n $c.s }}"), "printf: the format must be a string, not a int"),
        ("print", "", go("{{ $x := $c.s }}{{ range $i := 20 }}{{ $x = print $x $c.n $x }}{{ end }}"), "print: the result would be"),
        ("println", "", go("{{ $x := $c.s }}{{ range $i := 20 }}{{ $x = println $x $x }}{{ end }}"), "println: the result would be"),
        ("eq", "", go("{{ eq $c.n $c.s }}"), "eq: incompatible types for comparison (int and string)"),
        ("eq-list", "", go("{{ eq $c.l $c.n }}"), "eq: a list cannot be compared"),
        ("ne", "", go("{{ ne $c.b $c.f }}"), "ne: incompatible types for comparison (bool and float"),
        ("lt", "", go("{{ lt $c.b $c.b }}"), "lt: a bool cannot be ordered"),
        ("le", "", go("{{ le $c.n $c.s }}"), "le: incompatible types"),
        ("gt", "", go("{{ gt $c.f $c.n }}"), "gt: incompatible types"),
        ("ge", "", go("{{ ge $c.m $c.m }}"), "ge: a map cannot be ordered"),
        ("not", "", go("{{ not $c.n $c.b }}"), "not expects 1, got 2"),
        ("html", "", go("{{ html $c.n $c.s }}"), "html expects 1, got 2"),
        ("js", "", go("{{ js $c.f $c.s }}"), "js expects 1, got 2"),
        ("urlquery", "", go("{{ urlquery $c.b $c.s }}"), "urlquery expects 1, got 2"),
        ("call", "", go("{{ call $c.n $c.s }}"), "call: function values are not available"),
        ("range", "", go("{{ range $i, $v := $c.n }}{{ end }}"), "range: an integer can be iterated with one variable only"),
        ("range-type", "", go("{{ range $c.b }}{{ end }}"), "cannot range over bool"),
        ("field", "", go("{{ $c.n.x }}"), "can't evaluate field x in type int"),
        ("default", "", go("{{ default $c.n $c.s $c.f }}"), "default expects 2, got 3"),
        ("empty", "", go("{{ empty $c.n $c.s }}"), "empty expects 1, got 2"),
        ("ternary", "", go("{{ ternary $c.n $c.s }}"), "ternary expects 3, got 2"),
        (
            "quote",
            "",
            go("{{ $l := list $c.s }}{{ range $i := 30 }}{{ $l = list $l $l }}{{ end }}{{ quote $l }}"),
            "quote: the result would be",
        ),
        (
            "squote",
            "",
            go("{{ $l := list $c.n }}{{ range $i := 30 }}{{ $l = list $l $l }}{{ end }}{{ squote $l }}"),
            "squote: the result would be",
        ),
        ("trim", "", go("{{ trim $c.s $c.n }}"), "trim expects 1, got 2"),
        ("trimPrefix", "", go("{{ trimPrefix $c.s }}"), "trimPrefix expects 2, got 1"),
        ("trimSuffix", "", go("{{ trimSuffix $c.n }}"), "trimSuffix expects 2, got 1"),
        ("upper", "", go("{{ upper $c.s $c.f }}"), "upper expects 1, got 2"),
        ("lower", "", go("{{ lower $c.s $c.b }}"), "lower expects 1, got 2"),
        ("replace", "", go("{{ replace $c.s $c.n }}"), "replace expects 3, got 2"),
        ("contains", "", go("{{ contains $c.s }}"), "contains expects 2, got 1"),
        ("hasPrefix", "", go("{{ hasPrefix $c.s }}"), "hasPrefix expects 2, got 1"),
        ("hasSuffix", "", go("{{ hasSuffix $c.s }}"), "hasSuffix expects 2, got 1"),
        ("indent", "", go("{{ indent $c.n $c.s }}"), "indent: width must be an integer from 0 to 4096"),
        ("nindent", "", go("{{ nindent $c.s $c.s }}"), "nindent: width must be an integer from 0 to 4096"),
        ("b64enc", "", go("{{ b64enc $c.s $c.n }}"), "b64enc expects 1, got 2"),
        ("b64dec", "", go("{{ b64dec $c.s }}"), "b64dec: the input is not valid base64"),
        (
            "toJson",
            "",
            go("{{ $l := list $c.s }}{{ range $i := 30 }}{{ $l = list $l $l }}{{ end }}{{ toJson $l }}"),
            "toJson: the result would be",
        ),
        ("toPrettyJson", "", go("{{ toPrettyJson $c.n $c.s }}"), "toPrettyJson expects 1, got 2"),
        ("fromJson", "", go("{{ fromJson $c.s }}"), "fromJson: not valid JSON"),
        (
            "fromJson-deep",
            "",
            go(r#"{{ fromJson (printf "%s%v" (indent 100 "") $c.n | replace " " "[") }}"#),
            "fromJson: the input nests deeper than 64",
        ),
        ("toYaml", "", go("{{ toYaml $c.f $c.s }}"), "toYaml expects 1, got 2"),
        ("fromYaml", "", go(r#"{{ fromYaml (printf "%s: [%v" $c.s $c.n) }}"#), "fromYaml: the input is not valid YAML"),
        ("toString", "", go("{{ toString $c.n $c.s }}"), "toString expects 1, got 2"),
        ("sha256sum", "", go("{{ sha256sum $c.s $c.n }}"), "sha256sum expects 1, got 2"),
        (
            "list",
            "",
            go("{{ $l := list $c.s }}{{ range $i := 70 }}{{ $l = list $l }}{{ end }}"),
            "list: lists and maps may nest at most 64 deep",
        ),
        ("dict", "", go("{{ dict $c.s }}"), "dict: needs key/value pairs"),
        ("get", "", go(r#"{{ get $c.n "k" }}"#), "get: first argument must be a map"),
        ("hasKey", "", go(r#"{{ hasKey $c.f "k" }}"#), "hasKey: first argument must be a map"),
        ("keys", "", go("{{ keys $c.m $c.n }}"), "keys: first argument must be a map"),
        ("join", "", go("{{ join $c.s }}"), "join expects 2, got 1"),
        ("split", "", go("{{ split $c.s }}"), "split expects 2, got 1"),
        ("splitList", "", go("{{ splitList $c.n }}"), "splitList expects 2, got 1"),
        ("regexReplaceAll", "", go(r#"{{ regexReplaceAll (printf "(%s" $c.s) $c.s "x" }}"#), "regexReplaceAll: invalid regular expression"),
        ("regexMatch", "", go(r#"{{ regexMatch (printf "(%v" $c.n) $c.s }}"#), "regexMatch: invalid regular expression"),
        ("filterPEM", "", go("{{ filterPEM $c.s }}"), "filterPEM expects 2, got 1"),
        (
            "fail",
            "",
            go(r#"{{ fail (printf "%v %v %v %s" $c.n $c.f $c.b $c.s) }}"#),
            "fail: called with a message that is not a literal of the template (withheld)",
        ),
        ("pkcs12key", "", go("{{ pkcs12key $c.s }}"), "pkcs12key: "),
        ("pkcs12keyPass", "", go("{{ pkcs12keyPass $c.s (toJson $c) }}"), "pkcs12keyPass: "),
        ("pkcs12cert", "", go("{{ pkcs12cert (toJson $c) }}"), "pkcs12cert: "),
        ("pkcs12certPass", "", go("{{ pkcs12certPass $c.s (toJson $c) }}"), "pkcs12certPass: "),
        ("pemToPkcs12", "", go("{{ pemToPkcs12 $c.s (toJson $c) }}"), "pemToPkcs12: "),
        ("pemToPkcs12Pass", "", go("{{ pemToPkcs12Pass $c.s (toJson $c) $c.s }}"), "pemToPkcs12Pass: "),
        ("fullPemToPkcs12", "", go("{{ fullPemToPkcs12 $c.s (toJson $c) }}"), "fullPemToPkcs12: "),
        ("fullPemToPkcs12Pass", "", go("{{ fullPemToPkcs12Pass $c.s (toJson $c) $c.s }}"), "fullPemToPkcs12Pass: "),
        ("jwkPublicKeyPem", "", go("{{ jwkPublicKeyPem (toJson $c) }}"), "jwkPublicKeyPem: "),
        ("jwkPrivateKeyPem", "", go(r#"{{ jwkPrivateKeyPem (printf "{\"kty\":\"RSA\",\"n\":\"%v\"}" $c.n) }}"#), "jwkPrivateKeyPem: "),
        ("filterCertChain", "", go("{{ filterCertChain $c.s $c.n }}"), "filterCertChain: this ESO function is not supported yet"),
        ("env", "", go("{{ env $c.s }}"), "env: not available"),
        ("hb-printf", HB, "{{printf (lookup (fromJson j) \"n\")}}".into(), "printf: the format must be a string"),
        ("hb-b64dec", HB, "{{b64dec j}}".into(), "b64dec: the input is not valid base64"),
        ("hb-fail", HB, "{{fail j}}".into(), "fail: called with a message that is not a literal of the template (withheld)"),
        ("hb-fromYaml", HB, "{{fromYaml (printf \"%s: [\" j)}}".into(), "fromYaml: the input is not valid YAML"),
        ("hb-eq", HB, "{{eq (fromJson j) j}}".into(), "eq: a map cannot be compared"),
        ("hb-slice", HB, "{{slice j 0 (lookup (fromJson j) \"n\")}}".into(), "slice: an index is out of range"),
        ("hb-len", HB, "{{len (lookup (fromJson j) \"n\")}}".into(), "len: cannot take the length of a int"),
        ("hb-log", HB, "{{log j}}".into(), "log: not available"),
        ("hb-strict", HB, "{{lookup (fromJson j) \"CANARY-WORD-61\"}}".into(), "a variable is missing"),
    ];
    let docs: String = cases
        .iter()
        .map(|(name, annotations, template, _)| {
            let spec = format!(
                "  data: [{{secretKey: j, remoteRef: {{key: canary}}}}]\n  target:\n    template:\n      data:\n        k: '{}'\n",
                template.replace('\'', "''")
            );
            es(&format!("fn-{}", name.to_ascii_lowercase()), annotations, &spec)
        })
        .collect();
    let err = failed(&run(extsecret(&["render", "-o", "json"]), Some(format!("{CANARY_STORE}{docs}").as_bytes())));
    for canary in CANARIES {
        assert!(!err.to_ascii_uppercase().contains(&canary.to_ascii_uppercase()), "canary {canary} leaked:\n{err}");
    }
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(name, _, _, expected)| {
            let id = format!("ExternalSecret apps/fn-{}: spec.target.template.data.k: template: data.k", name.to_ascii_lowercase());
            let line = err.lines().find(|l| l.contains(&id));
            (!line.is_some_and(|l| l.contains(expected))).then(|| format!("{name}: expected `{expected}`, got {line:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}\n\n{err}", wrong.join("\n"));
    // `fail` with a literal message shows it.
    let spec = "  data: [{secretKey: j, remoteRef: {key: canary}}]\n  target:\n    template:\n      data:\n        k: '{{ fail \"rotate the key first\" }}'\n";
    let hb = spec.replace("{{ fail \"rotate the key first\" }}", "{{fail \"rotate the key first\"}}");
    let err =
        failed(&run(extsecret(&["render"]), Some(format!("{CANARY_STORE}{}{}", es("lit", "", spec), es("lit-hb", HB, &hb)).as_bytes())));
    assert!(error_of(&err, "lit").contains("data.k:1:4: fail: rotate the key first"), "{err}");
    assert!(error_of(&err, "lit-hb").contains("fail: rotate the key first"), "{err}");
}

#[test]
fn big_integers_and_floats_keep_go_forms_through_json_and_yaml() {
    let store = CANARY_STORE.replace(
        "        - {key: canary",
        "        - {key: nums, value: '{\"big\":123456789012345678901234567890,\"neg\":-98765432109876543210,\"f\":1e3,\"g\":2.5,\"h\":1e21,\"l\":[18446744073709551616]}'}\n        - {key: canary",
    );
    let spec = r#"  data: [{secretKey: j, remoteRef: {key: nums}}]
  target:
    template:
      data:
        json: '{{ .j | fromJson | toJson }}'
        pretty: '{{ (.j | fromJson).l | toPrettyJson }}'
        yaml: '{{ .j | fromJson | toYaml }}'
        big: '{{ (.j | fromJson).big }}'
        sum: '{{ printf "%s/%v" (.j | fromJson).neg (index (.j | fromJson).l 0) }}'
"#;
    let hb = spec
        .replace("{{ .j | fromJson | toJson }}", "{{toJson (fromJson j)}}")
        .replace("{{ (.j | fromJson).l | toPrettyJson }}", "{{toPrettyJson (lookup (fromJson j) \"l\")}}")
        .replace("{{ .j | fromJson | toYaml }}", "{{toYaml (fromJson j)}}")
        .replace("{{ (.j | fromJson).big }}", "{{lookup (fromJson j) \"big\"}}")
        .replace(
            r#"{{ printf "%s/%v" (.j | fromJson).neg (index (.j | fromJson).l 0) }}"#,
            r#"{{printf "%s/%v" (lookup (fromJson j) "neg") (lookup (fromJson j) "l")}}"#,
        );
    let out = ok(&run(
        extsecret(&["render", "-o", "json"]),
        Some(format!("{store}{}{}", es("nums", "", spec), es("nums-hb", HB, &hb)).as_bytes()),
    ));
    let all = secrets(&out);
    assert_eq!(all.len(), 2);
    for s in &all {
        assert_eq!(
            text(s, "json"),
            r#"{"big":123456789012345678901234567890,"f":1000,"g":2.5,"h":1e+21,"l":[18446744073709551616],"neg":-98765432109876543210}"#,
            "{}",
            s["metadata"]["name"]
        );
        assert_eq!(text(s, "pretty"), "[\n  18446744073709551616\n]");
        assert_eq!(
            text(s, "yaml"),
            "big: 123456789012345678901234567890\nf: 1000\ng: 2.5\nh: 1e+21\nl:\n- 18446744073709551616\nneg: -98765432109876543210"
        );
        assert_eq!(text(s, "big"), "123456789012345678901234567890");
    }
    assert_eq!(text(&all[0], "sum"), "-98765432109876543210/18446744073709551616");
    assert_eq!(text(&all[1], "sum"), "-98765432109876543210/[18446744073709551616]");
}

#[test]
fn pass_through_objects_and_list_items_keep_every_digit_in_json_and_yaml_output() {
    let input = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec: {big: 123456789012345678901234567890, f: 1e3, h: 1e21, g: 2.5}\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: item}\n  spec: {big: -123456789012345678901234567890, f: 1e3}\n";
    let json = ok(&run(extsecret(&["render", "-o", "json"]), Some(input.as_bytes())));
    assert!(json.contains("\"big\": 123456789012345678901234567890,\n"), "{json}");
    assert!(json.contains("\"f\": 1000,\n") && json.contains("\"h\": 1e+21,\n") && json.contains("\"g\": 2.5\n"), "{json}");
    assert!(json.contains("\"big\": -123456789012345678901234567890,\n"), "{json}");
    let yaml = ok(&run(extsecret(&["render"]), Some(input.as_bytes())));
    assert!(yaml.contains("spec: {big: 123456789012345678901234567890, f: 1e3, h: 1e21, g: 2.5}\n"), "passed through as written:\n{yaml}");
    assert!(yaml.contains("  big: -123456789012345678901234567890\n  f: 1000\n"), "a list item is written again:\n{yaml}");
    let krm = format!("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n- {}", input.split("items:\n- ").nth(1).unwrap());
    let out = ok(&run(extsecret(&["krm"]), Some(krm.as_bytes())));
    assert!(out.contains("    big: -123456789012345678901234567890\n    f: 1000\n"), "KRM items are written again:\n{out}");
}
