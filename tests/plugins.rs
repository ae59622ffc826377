//! The plugin front-ends driven by the real tools that call them: `kubectl kustomize` (legacy exec
//! plugin), `kpt fn eval`/`kpt fn render` (exec KRM function), a ResourceList piped exactly as
//! standalone kustomize sends a generator, and the Argo CD CMP contract (`plugin.yaml` commands run
//! with the environment Argo CD sets). The examples under `examples/argocd` and
//! `examples/kustomize` are the inputs, so they stay working.
//!
//! Not runnable here: standalone `kustomize build --enable-alpha-plugins --enable-exec` (no package
//! of it is reachable; kubectl's built-in kustomize has no `--enable-exec`), hence the piped
//! ResourceList tests, and `helm` (not installable here), hence a stand-in `helm` script that
//! checks the argv Argo CD's plugin hands it and prints what `helm template` would.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{bin, failed, ok, repo, run, scrub_env, stderr, stdout, tempdir, write};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// helpers

/// Copies a folder recursively (files only; no symlinks in the examples).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of `examples/<name>` in `dir`, returned as `dir/<name>`.
fn example(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    copy_dir(&repo().join("examples").join(name), &to);
    to
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("valid YAML")
}

fn executable(path: &Path, text: &str) {
    write(path.parent().unwrap(), path.file_name().unwrap().to_str().unwrap(), text);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A command for an external tool, without the `EXTSECRET_*`/`ARGOCD_*`/`AWS_*`/`KUSTOMIZE_*`
/// variables of the test environment (the tool passes its environment on to the plugin).
fn tool(program: &str) -> Command {
    let mut c = Command::new(program);
    scrub_env(&mut c);
    c
}

/// A store with ESO's `fake` provider holding one key: `SecretStore` in `namespace`, or a
/// `ClusterSecretStore` when `namespace` is `None`.
fn fake_store(name: &str, namespace: Option<&str>, key: &str, value: &str) -> String {
    let (kind, ns) = match namespace {
        Some(ns) => ("SecretStore", format!("\n  namespace: {ns}")),
        None => ("ClusterSecretStore", String::new()),
    };
    format!(
        "apiVersion: external-secrets.io/v1\nkind: {kind}\nmetadata:\n  name: {name}{ns}\nspec:\n  provider:\n    fake:\n      data:\n        - key: {key}\n          value: '{value}'\n"
    )
}

/// Installs the binary as the legacy exec plugin for `external-secrets.io/<version>` under
/// `plugin_home` (`$XDG_CONFIG_HOME/kustomize/plugin` or `$KUSTOMIZE_PLUGIN_HOME`): a symlink or
/// a copy; kustomize runs it by that path, which is how the binary knows it is the plugin.
fn install_legacy_plugin(plugin_home: &Path, version: &str, link: bool) {
    let dir = plugin_home.join("external-secrets.io").join(version).join("externalsecret");
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = dir.join("ExternalSecret");
    if link {
        symlink(bin(), &plugin).unwrap();
    } else {
        std::fs::copy(bin(), &plugin).unwrap();
    }
}

/// `kubectl kustomize --enable-alpha-plugins DIR`, run from `cwd`.
fn kubectl_kustomize(cwd: &Path, dir: &str) -> Command {
    let mut c = tool("kubectl");
    c.args(["kustomize", "--enable-alpha-plugins", dir]).current_dir(cwd);
    c
}

// ---------------------------------------------------------------------------------------------
// kustomize legacy exec plugin, through kubectl's built-in kustomize

const LEGACY_OUTPUT: &str = "\
apiVersion: v1
data:
  LOG_LEVEL: info
kind: ConfigMap
metadata:
  name: api-config
  namespace: demo
---
apiVersion: v1
data:
  token: dG9rLTEyMw==
kind: Secret
metadata:
  name: api-credentials
  namespace: demo
type: Opaque
";

#[test]
fn legacy_plugin_renders_the_example_kustomization_through_kubectl() {
    let tmp = tempdir();
    example(tmp.path(), "kustomize");
    let xdg = tmp.path().join("xdg");
    install_legacy_plugin(&xdg.join("kustomize/plugin"), "v1", true);
    // kubectl runs from the temp root; EXTSECRET_STORES is relative to the kustomization dir,
    // which is the plugin's cwd (it would not resolve from kubectl's cwd).
    let mut c = kubectl_kustomize(tmp.path(), "kustomize/legacy");
    c.env("XDG_CONFIG_HOME", &xdg).env("EXTSECRET_STORES", "../stores");
    // The example's ExternalSecret has no namespace: it is resolved in the kustomization's
    // `namespace: demo`, where kustomize puts the Secret.
    assert_eq!(ok(&run(c, None)), LEGACY_OUTPUT);
}

#[test]
fn legacy_plugin_resolves_a_namespaceless_external_secret_in_the_kustomization_namespace() {
    let tmp = tempdir();
    let dir = example(tmp.path(), "kustomize").join("legacy");
    let kustomization = read(&dir.join("kustomization.yaml")).replace("namespace: demo", "namespace: team-b\nnamePrefix: b-");
    write(&dir, "kustomization.yaml", &kustomization);
    // Two stores named alike in two namespaces: only team-b's may serve the Secret of team-b.
    let stores = tmp.path().join("stores");
    write(&stores, "demo.yaml", &read(&repo().join("examples/kustomize/stores/secretstore.yaml")));
    write(&stores, "team-b.yaml", &fake_store("demo-store", Some("team-b"), "/demo/api", r#"{"token":"team-b-token"}"#));
    let plugin_home = tmp.path().join("plugins");
    install_legacy_plugin(&plugin_home, "v1", true);
    let mut c = kubectl_kustomize(&dir, ".");
    c.env("KUSTOMIZE_PLUGIN_HOME", &plugin_home).env("EXTSECRET_STORES", &stores);
    let out = ok(&run(c, None));
    let secret = out.split("---\n").nth(1).unwrap();
    assert_eq!(
        secret,
        "apiVersion: v1\ndata:\n  token: dGVhbS1iLXRva2Vu\nkind: Secret\nmetadata:\n  name: b-api-credentials\n  namespace: team-b\ntype: Opaque\n"
    );

    // Without any namespace the SecretStore cannot be used, and kubectl fails with the reason.
    write(&dir, "kustomization.yaml", &kustomization.replace("namespace: team-b\n", ""));
    let mut c = kubectl_kustomize(&dir, ".");
    c.env("KUSTOMIZE_PLUGIN_HOME", &plugin_home).env("EXTSECRET_STORES", &stores);
    let o = run(c, None);
    assert!(!o.status.success() && o.stdout.is_empty());
    assert!(stderr(&o).contains("SecretStore `demo-store` serves one namespace, and this ExternalSecret has none"), "{}", stderr(&o));
}

#[test]
fn legacy_plugin_failure_fails_kubectl_with_our_message_and_no_value() {
    let tmp = tempdir();
    let examples = example(tmp.path(), "kustomize");
    let dir = examples.join("legacy");
    let es = read(&dir.join("externalsecret.yaml")).replace("property: token", "property: missing");
    write(&dir, "externalsecret.yaml", &es);
    let xdg = tmp.path().join("xdg");
    install_legacy_plugin(&xdg.join("kustomize/plugin"), "v1", true);
    let mut c = kubectl_kustomize(&dir, ".");
    c.env("XDG_CONFIG_HOME", &xdg).env("EXTSECRET_STORES", "../stores");
    let o = run(c, None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("spec.data[0].remoteRef.property: [NotFound] property `missing` does not exist in secret `/demo/api` (SecretStore demo/demo-store)"), "{err}");
    assert!(err.contains("failure in plugin configured via"), "kustomize names the plugin: {err}");
    for value in ["tok-123", "dG9rLTEyMw==", "\"user\":\"api\""] {
        assert!(!err.contains(value), "a secret value reached stderr: {err}");
    }
}

#[test]
fn legacy_plugin_v1beta1_layout_under_kustomize_plugin_home() {
    let tmp = tempdir();
    let examples = example(tmp.path(), "kustomize");
    let dir = examples.join("legacy");
    let es = read(&dir.join("externalsecret.yaml")).replace("external-secrets.io/v1\n", "external-secrets.io/v1beta1\n");
    assert!(es.contains("apiVersion: external-secrets.io/v1beta1\n"));
    write(&dir, "externalsecret.yaml", &es);
    let plugin_home = tmp.path().join("plugins");
    install_legacy_plugin(&plugin_home, "v1beta1", false);
    let mut c = kubectl_kustomize(tmp.path(), "kustomize/legacy");
    c.env("KUSTOMIZE_PLUGIN_HOME", &plugin_home).env("EXTSECRET_STORES", "../stores");
    assert_eq!(ok(&run(c, None)), LEGACY_OUTPUT);

    // The v1 layout does not serve a v1beta1 generator: kustomize looks by group/version/kind.
    let other_home = tmp.path().join("v1-only");
    install_legacy_plugin(&other_home, "v1", false);
    let mut c = kubectl_kustomize(tmp.path(), "kustomize/legacy");
    c.env("KUSTOMIZE_PLUGIN_HOME", &other_home).env("EXTSECRET_STORES", "../stores");
    let o = run(c, None);
    assert!(!o.status.success() && o.stdout.is_empty());
    assert!(stderr(&o).contains("external-secrets.io/v1beta1/externalsecret/ExternalSecret"), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------------------------
// exec KRM function, through kpt

/// `examples/kustomize/kpt-package` plus a SecretStore inside the package.
fn kpt_package(tmp: &Path) -> PathBuf {
    let pkg = example(tmp, "kustomize").join("kpt-package");
    std::fs::copy(repo().join("examples/kustomize/stores/secretstore.yaml"), pkg.join("secretstore.yaml")).unwrap();
    pkg
}

const KPT_SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: api-credentials
  namespace: demo
type: Opaque
data:
  token: dG9rLTEyMw==
";

#[test]
fn kpt_fn_eval_transforms_a_package_with_the_exec_function() {
    let tmp = tempdir();
    let pkg = kpt_package(tmp.path());
    let mut c = tool("kpt");
    c.args(["fn", "eval"]).arg(&pkg).arg("--exec").arg(bin()).args(["-o", "unwrap"]);
    let out = ok(&run(c, None));
    // Kptfile and ConfigMap untouched (comments kept), the ExternalSecret replaced by its Secret,
    // the SecretStore gone.
    let expected = format!("{}---\n{}---\n{KPT_SECRET}", read(&pkg.join("Kptfile")), read(&pkg.join("configmap.yaml")),);
    assert_eq!(out, expected);
}

#[test]
fn kpt_fn_eval_without_output_rewrites_the_package_in_place() {
    let tmp = tempdir();
    let pkg = kpt_package(tmp.path());
    let (kptfile, configmap) = (read(&pkg.join("Kptfile")), read(&pkg.join("configmap.yaml")));
    let mut c = tool("kpt");
    c.args(["fn", "eval"]).arg(&pkg).arg("--exec").arg(bin());
    ok(&run(c, None));
    // The Secret is written where the ExternalSecret was; the store's file is deleted.
    assert_eq!(read(&pkg.join("externalsecret.yaml")), KPT_SECRET);
    assert!(!pkg.join("secretstore.yaml").exists());
    assert_eq!(read(&pkg.join("Kptfile")), kptfile);
    assert_eq!(read(&pkg.join("configmap.yaml")), configmap);
    let mut files: Vec<String> = std::fs::read_dir(&pkg).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, ["Kptfile", "configmap.yaml", "externalsecret.yaml"]);
}

#[test]
fn kpt_fn_eval_failure_exits_non_zero_names_the_file_and_leaves_the_package() {
    let tmp = tempdir();
    let pkg = kpt_package(tmp.path());
    // The ExternalSecret as the second document of a file: the error names that file and index.
    let es = read(&pkg.join("externalsecret.yaml")).replace("property: token", "property: missing");
    std::fs::remove_file(pkg.join("externalsecret.yaml")).unwrap();
    write(&pkg, "app.yaml", &format!("{}---\n{es}", read(&pkg.join("configmap.yaml"))));
    std::fs::remove_file(pkg.join("configmap.yaml")).unwrap();
    let before = read(&pkg.join("app.yaml"));
    let mut c = tool("kpt");
    c.args(["fn", "eval"]).arg(&pkg).arg("--exec").arg(bin());
    let o = run(c, None);
    assert_ne!(o.status.code(), Some(0), "kpt must fail: {}", stderr(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("[FAIL]"), "{all}");
    assert!(
        all.contains(
            "app.yaml: document 1: ExternalSecret demo/api: spec.data[0].remoteRef.property: [NotFound] property `missing` does not exist"
        ),
        "{all}"
    );
    assert!(!all.contains("tok-123") && !all.contains("dG9rLTEyMw=="), "a value leaked: {all}");
    assert_eq!(read(&pkg.join("app.yaml")), before);
    assert!(pkg.join("secretstore.yaml").exists());
}

#[test]
fn kpt_fn_eval_replaces_an_external_secret_inside_a_list_item() {
    let tmp = tempdir();
    let pkg = kpt_package(tmp.path());
    // The ExternalSecret hidden in a `kind: List` beside a ConfigMap: before the fix kpt left the
    // raw ExternalSecret in the package.
    let es: Value = yaml(&read(&pkg.join("externalsecret.yaml")));
    let cm: Value = yaml(&read(&pkg.join("configmap.yaml")));
    std::fs::remove_file(pkg.join("externalsecret.yaml")).unwrap();
    std::fs::remove_file(pkg.join("configmap.yaml")).unwrap();
    let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"name": "bundle"}, "items": [cm, es]});
    write(&pkg, "list.yaml", &serde_json::to_string(&list).unwrap());
    let mut c = tool("kpt");
    c.args(["fn", "eval"]).arg(&pkg).arg("--exec").arg(bin()).args(["-o", "unwrap"]);
    let out = ok(&run(c, None));
    assert!(!out.contains("kind: ExternalSecret"), "{out}");
    let docs: Vec<Value> = out.split("\n---\n").map(yaml).collect();
    let list = docs.iter().find(|d| d["kind"] == "List").unwrap_or_else(|| panic!("no List in {out}"));
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{out}");
    assert_eq!(items[0]["kind"], "ConfigMap");
    assert_eq!(items[1]["kind"], "Secret");
    assert_eq!(items[1]["metadata"]["name"], "api-credentials");
    assert_eq!(items[1]["data"]["token"], "dG9rLTEyMw==");
}

#[test]
fn render_expands_a_piped_resource_list() {
    // A ResourceList piped into `render` is a list like any other: its ExternalSecret is rendered,
    // not passed through (before the fix the whole envelope went out untouched).
    let tmp = tempdir();
    let pkg = kpt_package(tmp.path());
    let es: Value = yaml(&read(&pkg.join("externalsecret.yaml")));
    let store: Value = yaml(&read(&pkg.join("secretstore.yaml")));
    let rl = json!({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": [store, es]});
    let mut c = Command::new(bin());
    scrub_env(&mut c);
    c.args(["render", "-"]);
    let out = ok(&run(c, Some(serde_json::to_string(&rl).unwrap().as_bytes())));
    assert!(!out.contains("ExternalSecret") && !out.contains("ResourceList"), "{out}");
    let secret = yaml(&out);
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["data"]["token"], "dG9rLTEyMw==");
}

#[test]
fn kpt_fn_eval_input_stores_use_the_process_identity_only_when_trusted() {
    // The package's own SecretStore reads AWS with the default chain: the environment's keys.
    let moto = common::moto();
    let name = format!("xs-kpt-trust-{}", std::process::id());
    let seed = "import boto3, sys\nc = boto3.client('secretsmanager', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\ntry:\n    c.create_secret(Name=sys.argv[2], SecretString='{\"token\":\"tok-from-aws\"}')\nexcept c.exceptions.ResourceExistsException:\n    pass\n";
    let mut c = tool("python3");
    c.args(["-c", seed, &moto.url, &name]);
    ok(&run(c, None));
    let tmp = tempdir();
    let pkg = example(tmp.path(), "kustomize").join("kpt-package");
    write(
        &pkg,
        "secretstore.yaml",
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: demo-store, namespace: demo}\nspec:\n  provider:\n    aws: {service: SecretsManager, region: us-east-1}\n",
    );
    let es = read(&pkg.join("externalsecret.yaml")).replace("key: /demo/api", &format!("key: {name}"));
    write(&pkg, "externalsecret.yaml", &es);
    let kpt = |trust: bool| {
        let mut c = tool("kpt");
        c.args(["fn", "eval"]).arg(&pkg).arg("--exec").arg(bin()).args(["-o", "unwrap"]);
        common::aws_env(&mut c, moto);
        if trust {
            c.env("EXTSECRET_TRUST_INPUT_STORES", "true");
        }
        run(c, None)
    };
    let refused = kpt(false);
    assert_ne!(refused.status.code(), Some(0), "kpt must fail: {}", stderr(&refused));
    let all = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(all.contains("[Refused]") && all.contains("SecretStore demo/demo-store") && all.contains("--trust-input-stores"), "{all}");
    assert!(!all.contains("tok-from-aws"), "{all}");
    let out = ok(&kpt(true));
    assert!(out.contains("token: dG9rLWZyb20tYXdz"), "{out}");
}

#[test]
fn kpt_fn_render_runs_the_kptfile_pipeline_from_path() {
    let tmp = tempdir();
    let examples = example(tmp.path(), "kustomize");
    let pkg = examples.join("kpt-package");
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    symlink(bin(), bin_dir.join("extsecret")).unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = tool("kpt");
    c.args(["fn", "render"])
        .arg(&pkg)
        .args(["--allow-exec", "-o", "unwrap"])
        .env("PATH", path)
        .env("EXTSECRET_STORES", examples.join("stores"));
    let out = ok(&run(c, None));
    assert_eq!(out, format!("{}---\n{}---\n{KPT_SECRET}", read(&pkg.join("Kptfile")), read(&pkg.join("configmap.yaml"))));
}

// ---------------------------------------------------------------------------------------------
// exec KRM function, as standalone kustomize calls a generator (render-contracts §3.6 B)

/// The ResourceList kustomize sends for `generators: [externalsecret.yaml]` of
/// `examples/kustomize/krm-function`: the config with `local-config` added, as `functionConfig`
/// and as the only item (with kustomize's internal annotations).
fn kustomize_generator_input(property: &str) -> String {
    format!(
        r#"apiVersion: config.kubernetes.io/v1
kind: ResourceList
items:
- apiVersion: external-secrets.io/v1
  kind: ExternalSecret
  metadata:
    name: api
    namespace: demo
    annotations:
      config.kubernetes.io/function: "exec:\n  path: extsecret\n"
      config.kubernetes.io/local-config: 'true'
      config.kubernetes.io/index: '0'
      internal.config.kubernetes.io/index: '0'
      internal.config.kubernetes.io/annotations-migration-resource-id: '0'
      internal.config.kubernetes.io/id: '1'
      config.k8s.io/id: '1'
  spec:
    secretStoreRef:
      kind: SecretStore
      name: demo-store
    target:
      name: api-credentials
    data:
    - secretKey: token
      remoteRef:
        key: /demo/api
        property: {property}
functionConfig:
  apiVersion: external-secrets.io/v1
  kind: ExternalSecret
  metadata:
    name: api
    namespace: demo
    annotations:
      config.kubernetes.io/function: "exec:\n  path: extsecret\n"
      config.kubernetes.io/local-config: "true"
  spec:
    secretStoreRef:
      kind: SecretStore
      name: demo-store
    target:
      name: api-credentials
    data:
    - secretKey: token
      remoteRef:
        key: /demo/api
        property: {property}
"#
    )
}

#[test]
fn krm_generator_input_matches_the_example_config() {
    // The piped input below is the example's generator config plus kustomize's local-config mark.
    let mut config = yaml(&read(&repo().join("examples/kustomize/krm-function/externalsecret.yaml")));
    config["metadata"]["annotations"]["config.kubernetes.io/local-config"] = json!("true");
    let input = yaml(&kustomize_generator_input("token"));
    assert_eq!(input["functionConfig"], config);
    let mut item = input["items"][0].clone();
    let annotations = item["metadata"]["annotations"].as_object_mut().unwrap();
    for internal in [
        "config.kubernetes.io/index",
        "internal.config.kubernetes.io/index",
        "internal.config.kubernetes.io/annotations-migration-resource-id",
        "internal.config.kubernetes.io/id",
        "config.k8s.io/id",
    ] {
        annotations.remove(internal).expect(internal);
    }
    assert_eq!(item, config);
    assert!(read(&repo().join("examples/kustomize/krm-function/kustomization.yaml")).contains("generators:\n  - externalsecret.yaml\n"));
}

#[test]
fn krm_generator_answers_with_only_the_secret() {
    let expected = "\
apiVersion: config.kubernetes.io/v1
kind: ResourceList
items:
- apiVersion: v1
  kind: Secret
  metadata:
    name: api-credentials
    namespace: demo
  type: Opaque
  data:
    token: dG9rLTEyMw==
";
    // As kustomize runs it: no arguments, the ResourceList on stdin (and as `extsecret krm`).
    for args in [&[][..], &["krm"][..]] {
        let mut c = common::extsecret(args);
        c.env("EXTSECRET_STORES", repo().join("examples/kustomize/stores"));
        assert_eq!(ok(&run(c, Some(kustomize_generator_input("token").as_bytes()))), expected, "args {args:?}");
    }
}

#[test]
fn krm_generator_failure_returns_error_results_and_exit_1() {
    let mut c = common::extsecret(&[]);
    c.env("EXTSECRET_STORES", repo().join("examples/kustomize/stores"));
    let o = run(c, Some(kustomize_generator_input("missing").as_bytes()));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = yaml(&stdout(&o));
    assert_eq!(out["kind"], "ResourceList");
    let results = out["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["severity"], "error");
    assert_eq!(results[0]["field"]["path"], "spec.data[0].remoteRef.property");
    let message = results[0]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "ExternalSecret demo/api: spec.data[0].remoteRef.property: [NotFound] property `missing` does not exist in secret `/demo/api`"
        ),
        "{message}"
    );
    // No Secret is produced, and no value shows anywhere.
    assert!(out["items"].as_array().unwrap().iter().all(|i| i["kind"] != "Secret"));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!all.contains("tok-123") && !all.contains("dG9rLTEyMw=="), "{all}");
}

#[test]
fn krm_generator_renders_a_package_item_that_only_shares_the_config_name() {
    // A package ExternalSecret with the functionConfig's name and namespace but another spec is
    // not kustomize's echo of the config: it is rendered, never dropped.
    let tmp = tempdir();
    let stores = tmp.path().join("stores");
    write(&stores, "b.yaml", &fake_store("b-store", Some("team-b"), "db", "s3cr3t"));
    let es = |annotations: &str, target: &str, key: &str| {
        format!(
            "  apiVersion: external-secrets.io/v1\n  kind: ExternalSecret\n  metadata: {{name: g, namespace: team-b{annotations}}}\n  spec: {{secretStoreRef: {{name: b-store}}, target: {{name: {target}}}, data: [{{secretKey: {key}, remoteRef: {{key: db}}}}]}}\n"
        )
    };
    let config = es(", annotations: {config.kubernetes.io/local-config: 'true'}", "from-config", "a");
    let list =
        |item: &str| format!("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nfunctionConfig:\n{config}items:\n-{}", &item[1..]);
    let krm = |input: &str| {
        let mut c = common::extsecret(&["krm"]);
        c.env("EXTSECRET_STORES", &stores);
        run(c, Some(input.as_bytes()))
    };
    let secret = |name: &str, key: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "team-b"}, "type": "Opaque", "data": {key: "czNjcjN0"}});
    let package_item = es(", annotations: {config.kubernetes.io/path: app/es.yaml}", "from-package", "other");
    let out = yaml(&ok(&krm(&list(&package_item))));
    let mut placed = secret("from-package", "other");
    placed["metadata"]["annotations"] = json!({"config.kubernetes.io/path": "app/es.yaml"});
    assert_eq!(out["items"], json!([secret("from-config", "a"), placed]));

    // Through kpt, in place: the package's ExternalSecret becomes its Secret in its own file.
    let pkg = tmp.path().join("pkg");
    write(&pkg, "Kptfile", "apiVersion: kpt.dev/v1\nkind: Kptfile\nmetadata:\n  name: pkg\n");
    write(
        &pkg.join("app"),
        "es.yaml",
        &package_item.replace("\n  ", "\n").replace(", annotations: {config.kubernetes.io/path: app/es.yaml}", "")[2..],
    );
    let fn_config = write(tmp.path(), "fn-config.yaml", &config.replace("\n  ", "\n")[2..]);
    let mut c = tool("kpt");
    c.args(["fn", "eval"]).arg(&pkg).arg("--exec").arg(bin()).arg("--fn-config").arg(&fn_config);
    c.env("EXTSECRET_STORES", &stores);
    ok(&run(c, None));
    assert_eq!(
        yaml(&read(&pkg.join("app/es.yaml"))),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "from-package", "namespace": "team-b"}, "type": "Opaque", "data": {"other": "czNjcjN0"}})
    );
    assert_eq!(yaml(&read(&pkg.join("team-b/secret_from-config.yaml")))["data"], json!({"a": "czNjcjN0"}));

    // kustomize's echo (the config with its tool annotations) is still skipped.
    let echo = es(", annotations: {config.kubernetes.io/local-config: 'true', config.kubernetes.io/index: '0', internal.config.kubernetes.io/id: '1'}", "from-config", "a");
    let out = yaml(&ok(&krm(&list(&echo))));
    assert_eq!(out["items"], json!([secret("from-config", "a")]));

    // The same spec with another annotation of its own is an object of the package: it collides
    // with the config by target, and the error names both.
    let twin =
        es(", annotations: {team: b, config.kubernetes.io/path: app/twin.yaml, config.kubernetes.io/index: '0'}", "from-config", "a");
    let o = krm(&list(&twin));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("app/twin.yaml: document 0: ExternalSecret team-b/g: spec.target.name: targets Secret `from-config`, as does ExternalSecret team-b/g (<functionConfig>: document 0)"),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------------------------------------
// Argo CD config-management plugin

/// `spec.generate` and `spec.discover.find` of `plugin.yaml`, each as an argv.
fn plugin_commands() -> (Vec<String>, Vec<String>) {
    let plugin = yaml(&read(&repo().join("plugin.yaml")));
    assert_eq!(plugin["kind"], "ConfigManagementPlugin");
    let argv = |spec: &Value| -> Vec<String> {
        let mut argv: Vec<String> = spec["command"].as_array().expect("command").iter().map(|v| v.as_str().unwrap().to_string()).collect();
        argv.extend(spec["args"].as_array().into_iter().flatten().map(|v| v.as_str().unwrap().to_string()));
        argv
    };
    (argv(&plugin["spec"]["generate"]), argv(&plugin["spec"]["discover"]["find"]))
}

/// Lays out `stores` as Kubernetes mounts a ConfigMap volume: the files in a timestamped hidden
/// folder, `..data` linking to it, and each key a symlink through `..data`.
fn configmap_volume(dir: &Path, stores: &Path) -> PathBuf {
    let data = dir.join("..2025_01_01_00_00_00.000000001");
    copy_dir(stores, &data);
    symlink(data.file_name().unwrap(), dir.join("..data")).unwrap();
    for entry in std::fs::read_dir(stores).unwrap() {
        let name = entry.unwrap().file_name();
        symlink(Path::new("..data").join(&name), dir.join(&name)).unwrap();
    }
    dir.to_path_buf()
}

/// One CMP invocation, as the sidecar runs it: the Application's source directory copied into a
/// per-request tree, the sidecar's environment as `examples/argocd/repo-server-sidecar.yaml`
/// declares it (stores from a ConfigMap-shaped folder), and the variables Argo CD adds for the
/// Application of `examples/argocd/application.yaml`. App parameters are set by each test.
struct Cmp {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    app: PathBuf,
    stores: PathBuf,
}

impl Cmp {
    fn new() -> Cmp {
        let tmp = tempdir();
        let root = tmp.path().to_path_buf();
        let app = root.join("_cmp_server/5f0c/examples/argocd/app");
        copy_dir(&repo().join("examples/argocd/app"), &app);
        let stores = configmap_volume(&root.join("etc/extsecret/stores"), &repo().join("examples/argocd/stores"));
        Cmp { _tmp: tmp, root, app, stores }
    }

    /// The sidecar container's `env` from the example patch, with its paths mapped into this test.
    fn sidecar_env(&self) -> Vec<(String, String)> {
        let patch = yaml(&read(&repo().join("examples/argocd/repo-server-sidecar.yaml")));
        let container = &patch["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["name"], "extsecret");
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let (name, value) = (e["name"].as_str().unwrap(), e["value"].as_str().unwrap());
                let value = match name {
                    "EXTSECRET_STORES" => self.stores.display().to_string(),
                    // Standalone kustomize is not installable here; kubectl's is the same code.
                    "EXTSECRET_KUSTOMIZE_COMMAND" => "kubectl kustomize".to_string(),
                    _ => value.to_string(),
                };
                (name.to_string(), value)
            })
            .collect()
    }

    /// `argv` (from plugin.yaml, `extsecret` replaced by the built binary) in the app directory.
    fn command(&self, argv: &[String]) -> Command {
        assert_eq!(argv[0], "extsecret", "plugin.yaml runs the binary by name");
        let mut c = Command::new(bin());
        c.args(&argv[1..]).current_dir(&self.app);
        scrub_env(&mut c);
        c.envs(self.sidecar_env());
        let application = yaml(&read(&repo().join("examples/argocd/application.yaml")));
        let spec = &application["spec"];
        let revision = "0123456789abcdef0123456789abcdef01234567";
        c.env("ARGOCD_APP_NAME", application["metadata"]["name"].as_str().unwrap())
            .env("ARGOCD_APP_NAMESPACE", spec["destination"]["namespace"].as_str().unwrap())
            .env("ARGOCD_APP_PROJECT_NAME", spec["project"].as_str().unwrap())
            .env("ARGOCD_APP_REVISION", revision)
            .env("ARGOCD_APP_REVISION_SHORT", &revision[..7])
            .env("ARGOCD_APP_REVISION_SHORT_8", &revision[..8])
            .env("ARGOCD_APP_SOURCE_REPO_URL", spec["source"]["repoURL"].as_str().unwrap())
            .env("ARGOCD_APP_SOURCE_PATH", spec["source"]["path"].as_str().unwrap())
            .env("ARGOCD_APP_SOURCE_TARGET_REVISION", spec["source"]["targetRevision"].as_str().unwrap())
            .env("KUBE_VERSION", "1.32.4")
            .env("KUBE_API_VERSIONS", "v1,apps/v1,external-secrets.io/v1");
        c
    }

    fn generate(&self) -> Command {
        self.command(&plugin_commands().0)
    }

    fn discover(&self) -> Command {
        self.command(&plugin_commands().1)
    }
}

const CMP_SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: web-database
  annotations:
    argocd.argoproj.io/sync-wave: \"-1\"
type: Opaque
data:
  password: dzNiLXMzY3IzdA==
  username: d2Vi
";

#[test]
fn cmp_generate_renders_the_example_app() {
    let cmp = Cmp::new();
    // `renderer: plain`, or no parameter at all (Argo CD does not send the announced default).
    for renderer in [Some("plain"), None] {
        let mut c = cmp.generate();
        if let Some(r) = renderer {
            c.env("PARAM_RENDERER", r);
        }
        let out = ok(&run(c, None));
        // The ConfigMap keeps its text; the ExternalSecret (no namespace: resolved in the
        // destination namespace, ARGOCD_APP_NAMESPACE) becomes its Secret; kustomization.yaml is
        // not a manifest.
        assert_eq!(out, format!("{}---\n{CMP_SECRET}", read(&cmp.app.join("configmap.yaml"))), "renderer {renderer:?}");
    }
}

#[test]
fn cmp_discover_prints_the_files_holding_external_secrets() {
    let cmp = Cmp::new();
    assert_eq!(ok(&run(cmp.discover(), None)), "./externalsecret.yaml\n");
    // No ExternalSecret: exit 0 and nothing printed, so Argo CD does not match the plugin.
    std::fs::remove_file(cmp.app.join("externalsecret.yaml")).unwrap();
    write(&cmp.app, "notes.yaml", "# kind: ExternalSecret, only in a comment\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: n\n");
    assert_eq!(ok(&run(cmp.discover(), None)), "");
}

#[test]
fn cmp_kustomize_renderer_takes_the_application_parameters_and_runs_kubectl() {
    let cmp = Cmp::new();
    let application = yaml(&read(&repo().join("examples/argocd/application.yaml")));
    let parameters = &application["spec"]["source"]["plugin"]["parameters"];
    assert_eq!(application["spec"]["source"]["plugin"]["name"], "extsecret-v1");
    // What Argo CD derives from `plugin.parameters`: the JSON, and one PARAM_ per string parameter.
    let mut c = cmp.generate();
    c.env("ARGOCD_APP_PARAMETERS", serde_json::to_string(parameters).unwrap());
    for p in parameters.as_array().unwrap() {
        let name: String =
            p["name"].as_str().unwrap().chars().map(|ch| if ch.is_ascii_alphanumeric() { ch.to_ascii_uppercase() } else { '_' }).collect();
        c.env(format!("PARAM_{name}"), p["string"].as_str().unwrap());
    }
    // kubectl's kustomize re-serializes the ConfigMap (sorted keys, no comments).
    let expected = format!("apiVersion: v1\ndata:\n  LOG_LEVEL: info\nkind: ConfigMap\nmetadata:\n  name: web-config\n---\n{CMP_SECRET}");
    assert_eq!(ok(&run(c, None)), expected);

    // The same through ARGOCD_APP_PARAMETERS alone (older Argo CD sends no PARAM_ variables).
    let mut c = cmp.generate();
    c.env("ARGOCD_APP_PARAMETERS", serde_json::to_string(parameters).unwrap());
    assert_eq!(ok(&run(c, None)), expected);

    // A kustomize failure is a failed render.
    write(&cmp.app, "kustomization.yaml", "resources:\n  - missing.yaml\n");
    let mut c = cmp.generate();
    c.env("PARAM_RENDERER", "kustomize");
    let err = failed(&run(c, None));
    assert!(err.contains("kustomize failed") && err.contains("missing.yaml"), "{err}");
}

/// A stand-in for `helm` (helm cannot be installed on this machine): checks that it is called as
/// `helm template RELEASE DIR --namespace NS -f VALUES...` and prints a chart's output as helm
/// does (leading `---`, `# Source:` comments), or fails like helm.
fn helm_stand_in(dir: &Path) -> PathBuf {
    let script = dir.join("bin/helm");
    executable(
        &script,
        r#"#!/bin/sh
expected="template web . --namespace demo -f ./values-prod.yaml"
if [ "$*" != "$expected" ]; then
  echo "stand-in helm: unexpected arguments: $*" >&2
  exit 64
fi
if ! grep -q 'replicas: 3' ./values-prod.yaml; then
  echo "Error: values file not readable" >&2
  exit 1
fi
if [ -f ./FAIL ]; then
  echo "Error: An error occurred while checking for chart dependencies. You may need to run \`helm dependency build\` to fetch missing dependencies: found in Chart.yaml, but missing in charts/ directory: postgresql" >&2
  exit 1
fi
cat <<'EOF'
---
# Source: web/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  REPLICAS: "3"
---
# Source: web/templates/externalsecret.yaml
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: web-database
spec:
  secretStoreRef:
    name: demo-store
  data:
    - secretKey: password
      remoteRef:
        key: /demo/web/database
        property: password
EOF
"#,
    );
    script
}

#[test]
fn cmp_helm_renderer_runs_helm_template_with_the_value_files() {
    let cmp = Cmp::new();
    let helm = helm_stand_in(&cmp.root);
    write(&cmp.app, "Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
    write(&cmp.app, "values-prod.yaml", "replicas: 3\n");
    let mut c = cmp.generate();
    c.env("EXTSECRET_HELM_COMMAND", &helm).env("PARAM_RENDERER", "helm").env("PARAM_HELM_VALUE_FILES_0", "values-prod.yaml");
    let expected = "\
# Source: web/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  REPLICAS: \"3\"
---
apiVersion: v1
kind: Secret
metadata:
  name: web-database
type: Opaque
data:
  password: dzNiLXMzY3IzdA==
";
    assert_eq!(ok(&run(c, None)), expected);
}

#[test]
fn cmp_helm_failure_fails_the_render_with_empty_stdout() {
    let cmp = Cmp::new();
    let helm = helm_stand_in(&cmp.root);
    write(&cmp.app, "values-prod.yaml", "replicas: 3\n");
    write(&cmp.app, "FAIL", "");
    let mut c = cmp.generate();
    c.env("EXTSECRET_HELM_COMMAND", &helm).env("PARAM_RENDERER", "helm").env("PARAM_HELM_VALUE_FILES_0", "values-prod.yaml");
    let err = failed(&run(c, None));
    assert!(err.contains("helm failed (exit status: 1)") && err.contains("missing in charts/ directory: postgresql"), "{err}");
}

#[test]
fn cmp_refuses_an_empty_render_unless_the_operator_allows_it() {
    let cmp = Cmp::new();
    for f in ["configmap.yaml", "externalsecret.yaml"] {
        std::fs::remove_file(cmp.app.join(f)).unwrap();
    }
    // Empty output would make Argo CD prune the whole Application.
    let mut c = cmp.generate();
    c.env("ARGOCD_ENV_EXTSECRET_ALLOW_EMPTY", "true");
    assert!(failed(&run(c, None)).contains("refusing empty output"));
    let mut c = cmp.generate();
    c.env("PARAM_ALLOW_EMPTY", "true");
    assert!(failed(&run(c, None)).contains("unknown plugin parameter(s) PARAM_ALLOW_EMPTY"));

    let mut c = cmp.generate();
    c.env("EXTSECRET_ALLOW_EMPTY", "true");
    let o = run(c, None);
    assert_eq!(ok(&o), "");

    let (mut generate, _) = plugin_commands();
    generate.push("--allow-empty".into());
    assert_eq!(ok(&run(cmp.command(&generate), None)), "");
}

#[test]
fn cmp_ignores_stores_and_settings_the_application_could_set() {
    let cmp = Cmp::new();
    // A folder of stores an Application author would like to use: a second `demo-store` with
    // other values, an `evil-store`, and a ClusterSecretStore.
    let evil = cmp.root.join("repo-controlled");
    let evil_value = r#"{"username":"evil","password":"evil"}"#;
    let evil_stores = [
        fake_store("demo-store", Some("demo"), "/demo/web/database", evil_value),
        fake_store("evil-store", Some("demo"), "/demo/web/database", evil_value),
        fake_store("evil-cluster-store", None, "/demo/web/database", evil_value),
    ];
    write(&evil, "stores.yaml", &evil_stores.join("---\n"));
    let marker = cmp.root.join("helm-was-run");
    let fake_helm = cmp.root.join("evil-helm");
    executable(&fake_helm, &format!("#!/bin/sh\ntouch {}\n", marker.display()));
    let attempts = |c: &mut Command| {
        c.env("ARGOCD_ENV_EXTSECRET_STORES", &evil)
            .env("ARGOCD_ENV_EXTSECRET_CREDENTIALS", cmp.root.join("does-not-exist"))
            .env("ARGOCD_ENV_EXTSECRET_NO_INPUT_STORES", "false")
            .env("ARGOCD_ENV_EXTSECRET_HELM_COMMAND", &fake_helm)
            .env("PARAM_RENDERER", "plain");
    };

    // Parameters this plugin does not take are refused outright (a typo must not fall back to a
    // default, and settings are never parameters).
    for (param, value) in [
        ("PARAM_STORES", evil.clone()),
        ("PARAM_EXTSECRET_STORES", evil.clone()),
        ("PARAM_CREDENTIALS", cmp.root.join("does-not-exist")),
        ("PARAM_HELM_COMMAND", fake_helm.clone()),
    ] {
        let mut c = cmp.generate();
        attempts(&mut c);
        c.env(param, &value);
        let err = failed(&run(c, None));
        assert!(err.contains(&format!("unknown plugin parameter(s) {param}")), "{err}");
    }

    // The operator's store serves the app; nothing of the folder above is read (it would be a
    // duplicate `demo-store`, and the credentials path does not even exist).
    let mut c = cmp.generate();
    attempts(&mut c);
    assert_eq!(ok(&run(c, None)), format!("{}---\n{CMP_SECRET}", read(&cmp.app.join("configmap.yaml"))));

    // The app cannot reach the other stores.
    for (kind, name, why) in [
        ("SecretStore", "evil-store", "no SecretStore `evil-store` in namespace `demo`"),
        (
            "ClusterSecretStore",
            "evil-cluster-store",
            "no ClusterSecretStore `evil-cluster-store` (ClusterSecretStores come only from --stores)",
        ),
    ] {
        let es = read(&cmp.app.join("externalsecret.yaml"))
            .replace("kind: SecretStore\n    name: demo-store", &format!("kind: {kind}\n    name: {name}"));
        write(&cmp.app, "externalsecret.yaml", &es);
        let mut c = cmp.generate();
        attempts(&mut c);
        let err = failed(&run(c, None));
        assert!(err.contains(why), "{err}");
        assert!(!err.contains("evil\""), "{err}");
        let restored = es.replace(&format!("kind: {kind}\n    name: {name}"), "kind: SecretStore\n    name: demo-store");
        write(&cmp.app, "externalsecret.yaml", &restored);
    }

    // Nor bring its own in the repository: the sidecar refuses input stores.
    std::fs::copy(evil.join("stores.yaml"), cmp.app.join("stores.yaml")).unwrap();
    let mut c = cmp.generate();
    attempts(&mut c);
    assert!(failed(&run(c, None)).contains("SecretStores from the rendered input are refused"));
    std::fs::remove_file(cmp.app.join("stores.yaml")).unwrap();

    // Nor choose the command that renders it.
    let mut c = cmp.generate();
    attempts(&mut c);
    c.env("PARAM_RENDERER", "helm");
    let err = failed(&run(c, None));
    assert!(err.contains("cannot run helm (`helm`)"), "{err}");
    assert!(!marker.exists(), "an Application-chosen helm command ran");
}

/// A TCP listener that accepts connections and never answers; reports the first accept.
fn silent_server() -> (u16, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
            let _ = tx.send(());
        }
    });
    (port, rx)
}

#[test]
fn cmp_sigterm_during_a_render_exits_at_once_with_empty_stdout() {
    let cmp = Cmp::new();
    // An AWS store whose endpoint accepts and never answers: the render waits on the provider.
    let stores = cmp.root.join("aws-stores");
    let aws_store = "\
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: demo-store
  namespace: demo
spec:
  provider:
    aws:
      service: SecretsManager
      region: us-east-1
";
    write(&stores, "aws.yaml", aws_store);
    let (port, accepted) = silent_server();
    let mut c = cmp.generate();
    c.env("PARAM_RENDERER", "plain")
        .env("EXTSECRET_STORES", &stores)
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if accepted.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        panic!("the render never reached the provider endpoint: {}", stderr(&child.wait_with_output().unwrap()));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "the render must still be waiting on the provider");
    // What Argo CD's CMP server does at the deadline.
    let sent = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = sent.elapsed();
    let (mut out, mut err) = (Vec::new(), String::new());
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(took < Duration::from_secs(2), "took {took:?} to stop");
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    assert!(err.contains("SIGTERM received; stopping without output"), "{err}");
}

#[test]
fn argocd_install_overlay_adds_the_sidecar_to_the_repo_server() {
    // examples/argocd/kustomization.yaml with a local stand-in for Argo CD's install.yaml (the
    // same repo-server volumes), built by real kubectl: the patch merges and the stores ConfigMap
    // (name with content hash) is what the sidecar mounts.
    let tmp = tempdir();
    let dir = example(tmp.path(), "argocd");
    let kustomization = read(&dir.join("kustomization.yaml"));
    let remote = "  - https://raw.githubusercontent.com/argoproj/argo-cd/stable/manifests/install.yaml\n";
    assert!(kustomization.contains(remote));
    write(&dir, "kustomization.yaml", &kustomization.replace(remote, "  - install.yaml\n"));
    let install = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: argocd-repo-server
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: argocd-repo-server
  template:
    metadata:
      labels:
        app.kubernetes.io/name: argocd-repo-server
    spec:
      containers:
        - name: argocd-repo-server
          image: quay.io/argoproj/argocd:v3.0.0
      volumes:
        - name: var-files
          emptyDir: {}
        - name: plugins
          emptyDir: {}
";
    write(&dir, "install.yaml", install);
    let out = ok(&run(kubectl_kustomize(&dir, "."), None));
    let docs: Vec<Value> = out.split("---\n").map(yaml).collect();
    let configmap = docs.iter().find(|d| d["kind"] == "ConfigMap").expect("stores ConfigMap");
    assert_eq!(configmap["metadata"]["namespace"], "argocd");
    assert_eq!(configmap["data"]["secretstore.yaml"], read(&repo().join("examples/argocd/stores/secretstore.yaml")));
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let sidecar = pod["containers"].as_array().unwrap().iter().find(|c| c["name"] == "extsecret").expect("sidecar");
    assert_eq!(sidecar["command"], json!(["/var/run/argocd/argocd-cmp-server"]));
    assert_eq!(sidecar["securityContext"]["runAsUser"], 999);
    assert_eq!(sidecar["securityContext"]["readOnlyRootFilesystem"], true);
    let mounts: Vec<(String, String)> = sidecar["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().into(), m["mountPath"].as_str().unwrap().into()))
        .collect();
    for (name, path) in [
        ("var-files", "/var/run/argocd"),
        ("plugins", "/home/argocd/cmp-server/plugins"),
        ("extsecret-tmp", "/tmp"),
        ("extsecret-stores", "/etc/extsecret/stores"),
    ] {
        assert!(mounts.contains(&(name.to_string(), path.to_string())), "{mounts:?}");
    }
    let env = sidecar["env"].as_array().unwrap();
    assert!(env.contains(&json!({"name": "EXTSECRET_STORES", "value": "/etc/extsecret/stores"})), "{env:?}");
    let volumes = pod["volumes"].as_array().unwrap();
    let stores_volume = volumes.iter().find(|v| v["name"] == "extsecret-stores").unwrap();
    assert_eq!(stores_volume["configMap"]["name"], configmap["metadata"]["name"]);
    assert!(volumes.iter().any(|v| v["name"] == "extsecret-tmp" && v["emptyDir"].is_object()));
    assert_eq!(volumes.len(), 4, "the stock var-files and plugins volumes stay: {volumes:?}");

    // The image bakes the root plugin.yaml where argocd-cmp-server reads it.
    let dockerfile = read(&dir.join("Dockerfile"));
    assert!(dockerfile.contains("COPY plugin.yaml /home/argocd/cmp-server/config/plugin.yaml\n"), "{dockerfile}");
    assert!(dockerfile.contains("USER 999"));
    let plugin = yaml(&read(&repo().join("plugin.yaml")));
    let application = yaml(&read(&dir.join("application.yaml")));
    assert_eq!(
        application["spec"]["source"]["plugin"]["name"],
        format!("{}-{}", plugin["metadata"]["name"].as_str().unwrap(), plugin["spec"]["version"].as_str().unwrap())
    );
}

// ---------------------------------------------------------------------------------------------
// Binding a render to its Argo CD Application; files stay inside the repository tree

/// `examples/argocd/app`'s ExternalSecret with `metadata.namespace: ns` (and `kind`/`name` of its store).
fn cmp_external_secret(ns: &str, store_kind: &str, store: &str) -> String {
    read(&repo().join("examples/argocd/app/externalsecret.yaml"))
        .replace("  name: web-database\n  annotations:", &format!("  name: web-database\n  namespace: {ns}\n  annotations:"))
        .replace("kind: SecretStore\n    name: demo-store", &format!("kind: {store_kind}\n    name: {store}"))
}

/// The value `examples/argocd/stores` would serve, as another tenant's: team-a's `demo-store`
/// and a ClusterSecretStore only team-a may use.
const TEAM_A_VALUE: &str = r#"{"username":"team-a-user","password":"team-a-password"}"#;

fn team_a_stores(cmp: &Cmp) -> PathBuf {
    let dir = cmp.root.join("etc/team-a-stores");
    let css = fake_store("shared", None, "/demo/web/database", TEAM_A_VALUE) + "  conditions:\n    - namespaces: [team-a]\n";
    write(&dir, "stores.yaml", &format!("{}---\n{css}", fake_store("demo-store", Some("team-a"), "/demo/web/database", TEAM_A_VALUE)));
    dir
}

#[test]
fn cmp_generate_refuses_objects_outside_the_application_namespace() {
    let cmp = Cmp::new();
    let stores = format!("{}:{}", cmp.stores.display(), team_a_stores(&cmp).display());
    let generate = |extra: &[(&str, &str)]| {
        let mut c = cmp.generate();
        c.env("EXTSECRET_STORES", &stores);
        for (k, v) in extra {
            c.env(k, v);
        }
        run(c, None)
    };
    // The app (destination namespace demo, project default) names team-a: its SecretStore, or
    // the ClusterSecretStore whose conditions admit team-a.
    for (kind, store) in [("SecretStore", "demo-store"), ("ClusterSecretStore", "shared")] {
        write(&cmp.app, "externalsecret.yaml", &cmp_external_secret("team-a", kind, store));
        let err = failed(&generate(&[]));
        assert!(
            err.contains("externalsecret.yaml: document 0: ExternalSecret team-a/web-database: metadata.namespace: namespace `team-a` is refused: Argo CD Application `web` (project `default`) deploys to namespace `demo`, and its ExternalSecrets and SecretStores must be in that namespace or in one the operator allows for project `default` (--project-namespaces / EXTSECRET_PROJECT_NAMESPACES)"),
            "{err}"
        );
        assert!(!err.contains("team-a-user") && !err.contains("dGVhbS1h"), "{err}");
    }
    // The operator allows project `default` into team-* namespaces: team-a's store serves it.
    let projects = write(&cmp.root, "etc/projects.yaml", "default: ['team-*', '!team-admin']\nother: ['*']\n");
    let out = ok(&generate(&[("EXTSECRET_PROJECT_NAMESPACES", projects.to_str().unwrap())]));
    assert!(out.contains("namespace: team-a") && out.contains("password: dGVhbS1hLXBhc3N3b3Jk"), "{out}");
    // ... and only there: another project's entry or a negated glob does not count.
    write(&cmp.app, "externalsecret.yaml", &cmp_external_secret("team-admin", "SecretStore", "demo-store"));
    let err = failed(&generate(&[("EXTSECRET_PROJECT_NAMESPACES", projects.to_str().unwrap())]));
    assert!(err.contains("namespace `team-admin` is refused"), "{err}");

    // A multi-namespace Application (empty destination namespace) gets only what the file allows;
    // an ExternalSecret without a namespace has none to take.
    write(&cmp.app, "externalsecret.yaml", &cmp_external_secret("demo", "SecretStore", "demo-store"));
    let err = failed(&generate(&[("ARGOCD_APP_NAMESPACE", "")]));
    assert!(
        err.contains("namespace `demo` is refused: Argo CD Application `web` (project `default`) deploys to no single namespace"),
        "{err}"
    );
    let multi = [("ARGOCD_APP_NAMESPACE", ""), ("EXTSECRET_PROJECT_NAMESPACES", projects.to_str().unwrap())];
    write(&cmp.app, "externalsecret.yaml", &cmp_external_secret("team-a", "SecretStore", "demo-store"));
    assert!(ok(&generate(&multi)).contains("password: dGVhbS1hLXBhc3N3b3Jk"));
    write(&cmp.app, "externalsecret.yaml", &read(&repo().join("examples/argocd/app/externalsecret.yaml")));
    let err = failed(&generate(&multi));
    assert!(
        err.contains("ExternalSecret web-database: metadata.namespace: no namespace, and Argo CD Application `web` (project `default`) has no destination namespace: set metadata.namespace to a namespace the operator allows for project `default`"),
        "{err}"
    );
}

#[test]
fn cmp_generate_refuses_input_stores_and_relative_operator_paths_by_default() {
    let cmp = Cmp::new();
    let own_store = fake_store("demo-store", Some("demo"), "/demo/web/database", r#"{"username":"own","password":"own-password"}"#);
    // The app brings a store of its own, in its own namespace, and the operator set nothing about
    // input stores: refused in argocd generate unless the operator opens them.
    write(&cmp.app, "stores.yaml", &own_store.replace("demo-store", "app-store"));
    let es = read(&cmp.app.join("externalsecret.yaml")).replace("name: demo-store", "name: app-store");
    write(&cmp.app, "externalsecret.yaml", &es);
    let err = failed(&run(cmp.generate(), None));
    assert!(err.contains("stores.yaml: document 0: SecretStore demo/app-store: SecretStores from the rendered input are refused (--no-input-stores, and by default in argocd generate); the operator gives stores with --stores, or allows input stores in argocd generate with --allow-input-stores / EXTSECRET_ALLOW_INPUT_STORES"), "{err}");
    for allow in [&["--allow-input-stores"][..], &[]] {
        let (mut argv, _) = plugin_commands();
        argv.extend(allow.iter().map(|a| a.to_string()));
        let mut c = cmp.command(&argv);
        if allow.is_empty() {
            c.env("EXTSECRET_ALLOW_INPUT_STORES", "true");
        }
        assert!(ok(&run(c, None)).contains("password: b3duLXBhc3N3b3Jk"));
    }

    // Relative operator paths would resolve inside the app directory (the CMP's cwd): an app with
    // a folder named like the operator's gets refused, not served.
    std::fs::remove_file(cmp.app.join("stores.yaml")).unwrap();
    write(&cmp.app, "externalsecret.yaml", &es.replace("name: app-store", "name: demo-store"));
    write(&cmp.app, "etc/stores/s.yml", &own_store);
    for (var, value) in
        [("EXTSECRET_STORES", "etc/stores"), ("EXTSECRET_CREDENTIALS", "./creds"), ("EXTSECRET_PROJECT_NAMESPACES", "p.yaml")]
    {
        let mut c = cmp.generate();
        c.env(var, value);
        let err = failed(&run(c, None));
        assert!(err.contains(&format!("`{value}` is a relative path, which in an Argo CD render resolves inside the untrusted application directory; the operator must give an absolute path")), "{err}");
        assert!(!err.contains("b3du"), "{err}");
    }
}

#[test]
fn cmp_generate_and_discover_read_nothing_outside_the_repository_tree() {
    let cmp = Cmp::new();
    // The operator's credentials, beside the checkout (as in the sidecar's file system).
    let canary = "Y2FuYXJ5LWNyZWRlbnRpYWw="; // base64 of canary-credential
    let creds = write(&cmp.root, "etc/extsecret/credentials/aws.yaml", &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: aws\n  namespace: demo\n  # kind: ExternalSecret external-secrets.io/\ndata:\n  key: {canary}\n"));
    // A file of the repository outside the app directory, linked from it: allowed.
    let repo_root = cmp.root.join("_cmp_server/5f0c");
    write(&repo_root, "shared/configmap-shared.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n");
    symlink(repo_root.join("shared/configmap-shared.yaml"), cmp.app.join("shared.yaml")).unwrap();
    let out = ok(&run(cmp.generate(), None));
    assert!(out.contains("name: shared") && out.contains("name: web-database"), "{out}");

    // A link to a file, or to a folder, outside the tree: refused, nothing printed.
    for (link, target) in [("leak.yaml", creds.clone()), ("linked", creds.parent().unwrap().to_path_buf())] {
        symlink(&target, cmp.app.join(link)).unwrap();
        let err = failed(&run(cmp.generate(), None));
        assert!(
            err.contains(&format!("{link}: refused: a symbolic link leads outside"))
                && err.contains("in Argo CD mode every file read must stay inside the repository tree Argo CD handed over"),
            "{err}"
        );
        assert!(!err.contains(canary) && !err.contains("credentials/aws.yaml"), "{err}");
        let o = run(cmp.discover(), None);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(o.stdout.is_empty() && stderr(&o).contains("refused: a symbolic link leads outside"), "{}", stderr(&o));
        std::fs::remove_file(cmp.app.join(link)).unwrap();
    }

    // helm reads files we never see: a link anywhere in the tree, or a value file linked out.
    let helm = helm_stand_in(&cmp.root);
    write(&cmp.app, "Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
    write(&cmp.app, "values-prod.yaml", "replicas: 3\n");
    let helm_run = || {
        let mut c = cmp.generate();
        c.env("EXTSECRET_HELM_COMMAND", &helm).env("PARAM_RENDERER", "helm").env("PARAM_HELM_VALUE_FILES_0", "values-prod.yaml");
        run(c, None)
    };
    ok(&helm_run());
    std::fs::create_dir_all(cmp.app.join("files")).unwrap();
    symlink(&creds, cmp.app.join("files/creds")).unwrap();
    assert!(failed(&helm_run()).contains("files/creds: refused: a symbolic link leads outside"));
    std::fs::remove_file(cmp.app.join("files/creds")).unwrap();
    std::fs::remove_file(cmp.app.join("values-prod.yaml")).unwrap();
    symlink(&creds, cmp.app.join("values-prod.yaml")).unwrap();
    assert!(failed(&helm_run()).contains("values-prod.yaml: refused: a symbolic link leads outside"));
}

#[test]
fn cmp_discover_reads_within_the_same_bound_as_generate() {
    let cmp = Cmp::new();
    // 17 MiB of comments before an ExternalSecret: over the 16 MiB bound of a CMP run.
    let big = format!(
        "{}{}",
        "# padding padding padding padding padding padding padding padding\n".repeat(17 * 16 * 1024),
        read(&cmp.app.join("externalsecret.yaml"))
    );
    write(&cmp.app, "big.yaml", &big);
    let o = run(cmp.discover(), None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("big.yaml: the files of this run hold more than 16 MiB; refused"), "{}", stderr(&o));
    assert!(failed(&run(cmp.generate(), None)).contains("big.yaml: the files of this run hold more than 16 MiB; refused"));
    // A renderer's output is held to the same bound.
    std::fs::remove_file(cmp.app.join("big.yaml")).unwrap();
    let helm = cmp.root.join("bin/big-helm");
    executable(
        &helm,
        "#!/bin/sh
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n'
yes '# padding padding padding padding' | head -c 17000000
",
    );
    let mut c = cmp.generate();
    c.env("EXTSECRET_HELM_COMMAND", &helm).env("PARAM_RENDERER", "helm");
    assert!(failed(&run(c, None)).contains("helm printed more than 16 MiB of manifests; refused"));
}

#[test]
fn cmp_renderer_output_is_bounded_while_it_is_read() {
    // A renderer that never stops printing is refused once past 16 MiB, long before --timeout
    // (buffered whole, it would run until the deadline and hold everything it printed).
    let cmp = Cmp::new();
    let endless = cmp.root.join("bin/endless-helm");
    executable(&endless, "#!/bin/sh\nexec yes '# padding line of a big chart output...........................'\n");
    let mut c = cmp.generate();
    c.env("EXTSECRET_HELM_COMMAND", &endless).env("PARAM_RENDERER", "helm").env("EXTSECRET_TIMEOUT", "30s");
    let started = Instant::now();
    let err = failed(&run(c, None));
    assert!(err.contains("helm printed more than 16 MiB of manifests; refused"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

    // A failing renderer's stderr is quoted by its last 4 KiB, marked as cut.
    let noisy = cmp.root.join("bin/noisy-helm");
    executable(
        &noisy,
        "#!/bin/sh\nyes 'warning: noisy chart line' | head -c 50000000 >&2\necho 'Error: the last line of helm' >&2\nexit 1\n",
    );
    let mut c = cmp.generate();
    c.env("EXTSECRET_HELM_COMMAND", &noisy).env("PARAM_RENDERER", "helm");
    let o = run(c, None);
    let err = failed(&o);
    assert!(err.contains("helm failed (exit status: 1): [stderr truncated: "), "{}", &err[..err.len().min(500)]);
    assert!(err.contains("earlier bytes omitted, the last 4 KiB follow]") && err.contains("Error: the last line of helm"), "{err}");
    assert!(o.stderr.len() < 8 * 1024, "{} bytes of stderr", o.stderr.len());
}

#[test]
fn legacy_plugin_under_argo_cd_resolves_in_the_application_namespace_not_a_base_kustomization() {
    let tmp = tempdir();
    let examples = example(tmp.path(), "kustomize");
    // The generator sits in a base with `namespace: team-a`; the overlay moves everything to team-b.
    let base = examples.join("base");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::copy(examples.join("legacy/externalsecret.yaml"), base.join("externalsecret.yaml")).unwrap();
    write(&base, "kustomization.yaml", "namespace: team-a\ngenerators:\n  - externalsecret.yaml\n");
    let overlay = examples.join("overlay");
    write(&overlay, "kustomization.yaml", "namespace: team-b\nresources:\n  - ../base\n");
    let stores = tmp.path().join("operator-stores");
    write(&stores, "team-a.yaml", &fake_store("demo-store", Some("team-a"), "/demo/api", r#"{"token":"team-a-token"}"#));
    write(&stores, "team-b.yaml", &fake_store("demo-store", Some("team-b"), "/demo/api", r#"{"token":"team-b-token"}"#));
    let plugin_home = tmp.path().join("plugins");
    install_legacy_plugin(&plugin_home, "v1", true);
    let kustomize = |argo: &[(&str, &str)]| {
        let mut c = kubectl_kustomize(&overlay, ".");
        c.env("KUSTOMIZE_PLUGIN_HOME", &plugin_home).env("EXTSECRET_STORES", &stores);
        for (k, v) in argo {
            c.env(k, v);
        }
        run(c, None)
    };
    let secret = |token: &str| {
        format!("apiVersion: v1\ndata:\n  token: {token}\nkind: Secret\nmetadata:\n  name: api-credentials\n  namespace: team-b\ntype: Opaque\n")
    };
    // Without Argo CD, kustomize's own rule: the base's namespace (team-a) is the generator's.
    assert_eq!(ok(&kustomize(&[])), secret("dGVhbS1hLXRva2Vu"));
    // Under Argo CD (it passes its build environment to kustomize): the Application's namespace.
    let argo = [("ARGOCD_APP_NAME", "web-b"), ("ARGOCD_APP_NAMESPACE", "team-b"), ("ARGOCD_APP_PROJECT_NAME", "team-b")];
    assert_eq!(ok(&kustomize(&argo)), secret("dGVhbS1iLXRva2Vu"));
    // An explicit namespace of another tenant is refused, and kustomize fails with the reason.
    let es = read(&base.join("externalsecret.yaml")).replace("  name: api\n", "  name: api\n  namespace: team-a\n");
    write(&base, "externalsecret.yaml", &es);
    let o = kustomize(&argo);
    assert!(!o.status.success() && o.stdout.is_empty());
    assert!(stderr(&o).contains("ExternalSecret team-a/api: metadata.namespace: namespace `team-a` is refused: Argo CD Application `web-b` (project `team-b`) deploys to namespace `team-b`"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("dGVhbS1h"), "{}", stderr(&o));
}

#[test]
fn kpt_fn_eval_under_argo_cd_refuses_another_namespace() {
    let tmp = tempdir();
    let pkg = kpt_package(tmp.path());
    let mut c = tool("kpt");
    c.args(["fn", "eval"]).arg(&pkg).arg("--exec").arg(bin()).args(["-o", "unwrap"]);
    c.env("ARGOCD_APP_NAMESPACE", "team-b").env("ARGOCD_APP_PROJECT_NAME", "team-b");
    let o = run(c, None);
    assert_ne!(o.status.code(), Some(0), "kpt must fail: {}", stdout(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("SecretStore demo/demo-store: metadata.namespace: namespace `demo` is refused"), "{all}");
    assert!(all.contains("ExternalSecret demo/api: metadata.namespace: namespace `demo` is refused"), "{all}");
    assert!(!all.contains("dG9rLTEyMw=="), "{all}");
}

#[test]
fn cmp_timeout_bounds_the_renderer_and_the_reads_together() {
    // A renderer that takes 3 s, then a store that never answers: with `--timeout 4s` the
    // command ends near 4 s (renderer included), not 3 s + 4 s.
    let cmp = Cmp::new();
    let helm = helm_stand_in(&cmp.root);
    let slow_helm = cmp.root.join("bin/slow-helm");
    executable(&slow_helm, &format!("#!/bin/sh\nsleep 3\nexec {} \"$@\"\n", helm.display()));
    write(&cmp.app, "values-prod.yaml", "replicas: 3\n");
    let stores = cmp.root.join("aws-stores");
    write(
        &stores,
        "aws.yaml",
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata:\n  name: demo-store\n  namespace: demo\nspec:\n  provider:\n    aws:\n      service: SecretsManager\n      region: us-east-1\n",
    );
    let (port, _accepted) = silent_server();
    let mut c = cmp.generate();
    c.env("EXTSECRET_HELM_COMMAND", &slow_helm)
        .env("PARAM_RENDERER", "helm")
        .env("PARAM_HELM_VALUE_FILES_0", "values-prod.yaml")
        .env("EXTSECRET_TIMEOUT", "4s")
        .env("EXTSECRET_STORES", &stores)
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1");
    let started = Instant::now();
    let err = failed(&run(c, None));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(5500), "took {took:?}: --timeout must bound renderer and reads together\n{err}");
    assert!(err.contains(&format!("SecretStore demo/demo-store (host 127.0.0.1:{port}) did not answer")), "{err}");
}
