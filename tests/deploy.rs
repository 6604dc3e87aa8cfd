//! `deploy/`: the compose file, the Kubernetes manifests and the Grafana
//! dashboard may only name what the code has — configuration keys, `--only`
//! parts, commands, HTTP routes, ports, metrics, queue names — so they cannot
//! rot silently when the code changes.
//!

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// YAML documents (a file may hold several), with merge keys (`<<:`) applied.
fn yaml_documents(path: &str) -> Vec<Value> {
    use serde::Deserialize;
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let mut value = serde_yaml_ng::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{path}: merge keys: {e}"));
            serde_json::to_value(value).unwrap_or_else(|e| panic!("{path}: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml(path: &str) -> Value {
    let mut docs = yaml_documents(path);
    assert_eq!(docs.len(), 1, "{path} holds one document");
    docs.remove(0)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// What the code has, read from its sources and config/default.toml.
struct Code {
    keys: BTreeSet<String>,
    routes: BTreeSet<String>,
    metrics: BTreeSet<String>,
    parts: BTreeSet<String>,
    commands: BTreeSet<String>,
    default_config: toml::Table,
}

impl Code {
    fn read() -> Code {
        let default_config: toml::Table = read("config/default.toml")
            .parse()
            .expect("config/default.toml is TOML");
        let mut sources = String::new();
        rust_sources(&repo().join("services"), &mut sources);
        let dynzero = {
            let mut s = String::new();
            rust_sources(&repo().join("services/dynzero/src"), &mut s);
            s
        };
        Code {
            keys: config_keys(&default_config),
            routes: quoted_after(&sources, ".route(\"").collect(),
            metrics: quoted_after(&sources, "\"dynzero_")
                .map(|m| format!("dynzero_{m}"))
                .collect(),
            parts: enum_variants(&dynzero, "enum Part {"),
            commands: enum_variants(&dynzero, "enum Command {"),
            default_config,
        }
    }

    fn has(&self, kind: &str, name: &str) -> bool {
        let set = match kind {
            "key" => &self.keys,
            "route" => &self.routes,
            "metric" => &self.metrics,
            "part" => &self.parts,
            "command" => &self.commands,
            _ => panic!("no such kind {kind}"),
        };
        set.contains(name)
    }

    /// The names of `kind` in `used` the code lacks.
    fn missing(&self, kind: &str, used: impl IntoIterator<Item = String>) -> Vec<String> {
        used.into_iter().filter(|n| !self.has(kind, n)).collect()
    }
}

fn rust_sources(dir: &Path, out: &mut String) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).expect("a source file"));
        }
    }
}

/// `section.key` for every key of every table of the configuration.
fn config_keys(table: &toml::Table) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (section, value) in table {
        match value.as_table() {
            Some(inner) => keys.extend(inner.keys().map(|k| format!("{section}.{k}"))),
            None => {
                keys.insert(section.clone());
            }
        }
    }
    keys
}

/// Every string that follows `marker` up to the next `"`.
fn quoted_after<'a>(text: &'a str, marker: &'a str) -> impl Iterator<Item = String> + 'a {
    text.match_indices(marker).filter_map(move |(at, _)| {
        let rest = &text[at + marker.len()..];
        rest.find('"').map(|end| rest[..end].to_owned())
    })
}

/// The variants of a clap `ValueEnum`/`Subcommand` as the command line spells
/// them (kebab-case).
fn enum_variants(text: &str, opening: &str) -> BTreeSet<String> {
    let start = text
        .find(opening)
        .unwrap_or_else(|| panic!("`{opening}` not found in services/dynzero/src"));
    let body = &text[start + opening.len()..];
    let mut depth = 0usize;
    let mut variants = BTreeSet::new();
    for line in body.lines() {
        let trimmed = line.trim();
        if depth == 0 && trimmed.starts_with('}') {
            break;
        }
        let first = trimmed.chars().next();
        if depth == 0 && first.is_some_and(|c| c.is_ascii_uppercase()) {
            let name: String = trimmed
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            variants.insert(kebab(&name));
        }
        depth += trimmed.matches(['{', '(']).count();
        depth -= trimmed.matches(['}', ')']).count().min(depth);
    }
    variants
}

fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// `DYNZERO__SECTION__KEY` → `section.key`.
fn config_key(variable: &str) -> Option<String> {
    let rest = variable.strip_prefix("DYNZERO__")?;
    Some(rest.to_ascii_lowercase().replace("__", "."))
}

/// The `--only` parts and the subcommand of a `dynzero` argument list
/// (after any `--config FILE`).
fn parts_and_command(args: &[String]) -> (Vec<String>, Option<String>) {
    let mut rest = args.iter().peekable();
    let mut command = None;
    let mut parts = Vec::new();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--config" => {
                rest.next();
            }
            "--only" => {
                let list = rest.next().expect("a list after --only");
                parts.extend(list.split(',').map(str::to_owned));
            }
            a if !a.starts_with('-') && command.is_none() => command = Some(a.to_owned()),
            _ => {}
        }
    }
    (parts, command)
}

// ---------------------------------------------------------------- compose

fn compose() -> Value {
    yaml("deploy/compose.yaml")
}

fn services(compose: &Value) -> &serde_json::Map<String, Value> {
    compose["services"].as_object().expect("compose services")
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .map(|env| {
            env.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_runs_a_three_node_cluster_the_parts_and_their_monitoring() {
    let compose = compose();
    let services = services(&compose);
    let command = |name: &str| strings(&services[name]["command"]);
    assert_eq!(command("hub"), ["run", "--only", "consumer,relay,sweeper"]);
    assert_eq!(services["hub"]["deploy"]["replicas"], 2);
    assert_eq!(command("notifier"), ["run", "--only", "notifier"]);
    assert_eq!(command("api"), ["run", "--only", "api"]);
    for name in ["postgres", "prometheus", "grafana", "migrate"] {
        assert!(services.contains_key(name), "compose runs {name}");
    }

    let conf = read("deploy/rabbitmq/rabbitmq.conf");
    let cluster: BTreeSet<String> = conf
        .lines()
        .filter(|l| l.starts_with("cluster_formation.classic_config.nodes."))
        .map(|l| l.split('=').nth(1).expect("a node").trim().to_owned())
        .collect();
    let nodes: BTreeSet<String> = services
        .values()
        .filter(|s| s["command"] == serde_json::json!(["rabbitmq-server"]))
        .map(|s| format!("rabbit@{}", s["hostname"].as_str().expect("a hostname")))
        .collect();
    assert_eq!(nodes.len(), 3, "three RabbitMQ nodes");
    assert_eq!(
        nodes, cluster,
        "rabbitmq.conf clusters exactly the compose nodes"
    );

    let definitions_path = conf
        .lines()
        .find_map(|l| l.strip_prefix("definitions.local.path = "))
        .expect("the definitions are loaded at boot");
    for node in services.values().filter(|s| s["hostname"].is_string()) {
        let mounts = strings(&node["volumes"]);
        assert!(
            mounts
                .iter()
                .any(|m| m.starts_with("./rabbitmq/definitions.json:")
                    && m.contains(&format!(":{definitions_path}:"))),
            "{} mounts the definitions at {definitions_path}",
            node["hostname"]
        );
    }
    let definitions: Value =
        serde_json::from_str(&read("deploy/rabbitmq/definitions.json")).expect("JSON");
    assert_eq!(
        definitions["vhosts"][0]["metadata"]["default_queue_type"], "quorum",
        "quorum is the vhost's default queue type"
    );
    assert!(read("deploy/rabbitmq/enabled_plugins").contains("rabbitmq_prometheus"));
}

#[test]
fn compose_mounts_only_files_that_exist() {
    let compose = compose();
    for (name, service) in services(&compose) {
        for mount in strings(&service["volumes"]) {
            let source = mount.split(':').next().unwrap();
            if let Some(path) = source.strip_prefix("./") {
                assert!(
                    repo().join("deploy").join(path).exists(),
                    "{name} mounts deploy/{path}, which does not exist"
                );
            }
        }
    }
}

#[test]
fn compose_sets_only_real_configuration_keys_and_every_password_it_needs() {
    let code = Code::read();
    let compose = compose();
    let mut used = Vec::new();
    for service in services(&compose).values() {
        used.extend(environment(service).keys().filter_map(|v| config_key(v)));
    }
    assert!(used.contains(&"database.url".to_owned()));
    assert_eq!(code.missing("key", used), Vec::<String>::new());

    let text = read("deploy/compose.yaml");
    let required: BTreeSet<String> = text
        .match_indices("${")
        .map(|(at, _)| {
            text[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    let example = read("deploy/env.example");
    for variable in &required {
        assert!(
            example
                .lines()
                .any(|l| l.starts_with(&format!("{variable}="))),
            "deploy/env.example sets {variable}"
        );
    }
    let script = read("deploy/rabbitmq/set-passwords.sh");
    let definitions: Value =
        serde_json::from_str(&read("deploy/rabbitmq/definitions.json")).expect("JSON");
    for user in definitions["users"].as_array().expect("users") {
        let user = user["name"].as_str().expect("a user name");
        let variable = format!("{}_PASSWORD", user.to_ascii_uppercase().replace('-', "_"));
        assert!(
            script.contains(user),
            "set-passwords.sh sets {user}'s password"
        );
        assert!(required.contains(&variable), "compose passes {variable}");
    }
}

#[test]
fn prometheus_scrapes_the_port_the_parts_serve_metrics_on() {
    let compose = compose();
    let listen = environment(&services(&compose)["hub"])["DYNZERO__METRICS__LISTEN"].clone();
    let port: u16 = listen.rsplit(':').next().unwrap().parse().expect("a port");
    let prometheus = yaml("deploy/prometheus.yml");
    let dynzero = prometheus["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "dynzero")
        .expect("a dynzero job");
    assert_eq!(dynzero["dns_sd_configs"][0]["port"], port);
    let names = strings(&dynzero["dns_sd_configs"][0]["names"]);
    for name in &names {
        assert!(services(&compose).contains_key(name), "{name} is a service");
    }
}

// ---------------------------------------------------------------- Grafana

#[test]
fn dashboard_uses_only_metrics_the_code_records() {
    let code = Code::read();
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/dynzero.json")).expect("the dashboard is JSON");
    let datasource = yaml("deploy/grafana/provisioning/datasources/prometheus.yaml");
    let uid = &datasource["datasources"][0]["uid"];
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert_eq!(&panel["datasource"]["uid"], uid, "{}", panel["title"]);
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expression");
            used.extend(dashboard_metrics(expr));
        }
    }
    assert!(used.len() >= 10, "the dashboard shows the hub's metrics");
    assert_eq!(code.missing("metric", used), Vec::<String>::new());
}

/// The operational gauges and histograms each have a panel: what the
/// operations guide tells an operator to alert on, they can also see.
#[test]
fn dashboard_shows_the_outbox_deliveries_latency_batches_and_redeliveries() {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/dynzero.json")).expect("the dashboard is JSON");
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            used.extend(dashboard_metrics(
                target["expr"].as_str().unwrap_or_default(),
            ));
        }
    }
    use dynzero_reconciler::metrics as hub;
    let shown = [
        hub::OUTBOX_ROWS,
        hub::OUTBOX_OLDEST_AGE,
        hub::BATCH_SIZE,
        hub::PROCESSING_LATENCY,
        hub::REDELIVERIES,
        dynzero_notifier::metrics::DELIVERIES,
    ];
    let missing: Vec<&str> = shown.into_iter().filter(|m| !used.contains(*m)).collect();
    assert_eq!(missing, Vec::<&str>::new(), "metrics without a panel");
}

/// `dynzero_*` metric names in a PromQL expression, histogram suffixes removed.
fn dashboard_metrics(expr: &str) -> Vec<String> {
    expr.match_indices("dynzero_")
        .map(|(at, _)| {
            let name: String = expr[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .map_or(name.clone(), str::to_owned)
        })
        .collect()
}

// ---------------------------------------------------------------- Kubernetes

fn k8s_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("deploy/k8s") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            k8s_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            let relative = path.strip_prefix(repo()).unwrap().to_string_lossy();
            out.push(relative.into_owned());
        }
    }
}

/// Every manifest of every kustomization, parsed.
fn manifests() -> Vec<(String, Value)> {
    let mut files = Vec::new();
    k8s_files(&repo().join("deploy/k8s"), &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        for doc in yaml_documents(&file) {
            assert!(doc["kind"].is_string(), "{file}: a document without kind");
            out.push((file.clone(), doc));
        }
    }
    out
}

fn containers(deployment: &Value) -> Vec<&Value> {
    let spec = &deployment["spec"]["template"]["spec"];
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten()
        .collect()
}

#[test]
fn kustomizations_name_files_that_exist_and_the_configuration_is_the_defaults() {
    let code = Code::read();
    for (file, doc) in manifests() {
        if doc["kind"] != "Kustomization" {
            continue;
        }
        let dir = Path::new(&file).parent().unwrap();
        let mut named = strings(&doc["resources"]);
        for generator in doc["configMapGenerator"].as_array().into_iter().flatten() {
            for entry in strings(&generator["files"]) {
                let source = entry.rsplit('=').next().unwrap().to_owned();
                if source.ends_with(".toml") {
                    let text = read(&dir.join(&source).to_string_lossy());
                    let table: toml::Table = text.parse().expect("a TOML configuration");
                    let unknown: Vec<String> = config_keys(&table)
                        .into_iter()
                        .filter(|k| !code.keys.contains(k))
                        .collect();
                    assert_eq!(unknown, Vec::<String>::new(), "{file}: {source}");
                }
                named.push(source);
            }
        }
        for name in named {
            assert!(repo().join(dir).join(&name).exists(), "{file} names {name}");
        }
    }
    assert_eq!(
        read("deploy/k8s/base/default.toml"),
        read("config/default.toml"),
        "deploy/k8s/base/default.toml is a copy of config/default.toml (kustomize reads \
         no file outside its directory): cp config/default.toml deploy/k8s/base/default.toml"
    );
}

#[test]
fn deployments_set_only_real_keys_parts_and_commands() {
    let code = Code::read();
    let mut keys = Vec::new();
    let mut parts = Vec::new();
    let mut commands = Vec::new();
    let manifests = manifests();
    for (_, doc) in manifests.iter().filter(|(_, d)| d["kind"] == "Deployment") {
        for container in containers(doc) {
            for env in container["env"].as_array().into_iter().flatten() {
                let name = env["name"].as_str().expect("an env name");
                keys.push(config_key(name).unwrap_or_else(|| panic!("{name} is no DYNZERO__ key")));
                if let Some(secret) = env["valueFrom"]["secretKeyRef"].as_object() {
                    assert!(secret.contains_key("name") && secret.contains_key("key"));
                }
            }
            let (p, c) = parts_and_command(&strings(&container["args"]));
            parts.extend(p);
            commands.extend(c);
        }
    }
    assert!(keys.contains(&"amqp.urls".to_owned()));
    assert_eq!(code.missing("key", keys), Vec::<String>::new());
    assert_eq!(code.missing("part", parts), Vec::<String>::new());
    assert_eq!(code.missing("command", commands), Vec::<String>::new());
    let secrets: Vec<_> = manifests
        .iter()
        .filter(|(_, d)| d["kind"] == "Secret")
        .collect();
    assert!(
        secrets.is_empty(),
        "Secrets are referenced, never committed"
    );
}

#[test]
fn probes_use_routes_the_code_serves_on_ports_the_container_listens_on() {
    let code = Code::read();
    let mut paths = Vec::new();
    let mut probes = 0;
    for (file, doc) in manifests()
        .iter()
        .filter(|(_, d)| d["kind"] == "Deployment")
    {
        for container in containers(doc) {
            let listening: BTreeMap<String, u64> = container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["name"].as_str().is_some_and(|n| n.ends_with("__LISTEN")))
                .map(|e| {
                    let value = e["value"].as_str().expect("a listen address");
                    let port = value.rsplit(':').next().unwrap().parse().expect("a port");
                    (e["name"].as_str().unwrap().to_owned(), port)
                })
                .collect();
            let ports: BTreeMap<String, u64> = container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let port = p["containerPort"].as_u64().expect("a containerPort");
                    assert!(
                        listening.values().any(|l| *l == port),
                        "{file}: port {port} is no address the container listens on"
                    );
                    (p["name"].as_str().unwrap_or_default().to_owned(), port)
                })
                .collect();
            for probe in ["livenessProbe", "readinessProbe"] {
                let get = &container[probe]["httpGet"];
                if get.is_null() {
                    continue;
                }
                probes += 1;
                let port = match &get["port"] {
                    Value::String(name) => ports.get(name).copied(),
                    other => other.as_u64(),
                };
                assert!(
                    port.is_some_and(|p| ports.values().any(|q| *q == p)),
                    "{file}: {probe} port {} is not a container port",
                    get["port"]
                );
                paths.push(get["path"].as_str().expect("a probe path").to_owned());
            }
            if container["name"] != "migrate" {
                assert!(
                    container["livenessProbe"]["httpGet"]["path"] == "/healthz"
                        && container["readinessProbe"]["httpGet"]["path"] == "/readyz",
                    "{file}: liveness on /healthz and readiness on /readyz"
                );
            }
        }
    }
    assert!(probes >= 6, "every part has both probes");
    assert_eq!(code.missing("route", paths), Vec::<String>::new());
}

#[test]
fn keda_scales_the_hub_on_the_reconcilers_queue_and_budgets_cover_deployments() {
    let code = Code::read();
    let queue = code.default_config["amqp"]["queue"]
        .as_str()
        .expect("amqp.queue");
    let manifests = manifests();
    let deployments: BTreeMap<&str, &Value> = manifests
        .iter()
        .filter(|(_, d)| d["kind"] == "Deployment")
        .map(|(_, d)| (d["metadata"]["name"].as_str().unwrap(), d))
        .collect();
    let scaled: Vec<_> = manifests
        .iter()
        .filter(|(_, d)| d["kind"] == "ScaledObject")
        .collect();
    assert_eq!(scaled.len(), 1);
    let (_, scaled) = scaled[0];
    assert!(deployments.contains_key(scaled["spec"]["scaleTargetRef"]["name"].as_str().unwrap()));
    let trigger = &scaled["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "rabbitmq");
    assert_eq!(trigger["metadata"]["queueName"], queue);

    let budgets: Vec<_> = manifests
        .iter()
        .filter(|(_, d)| d["kind"] == "PodDisruptionBudget")
        .collect();
    assert!(!budgets.is_empty());
    for (file, budget) in budgets {
        let selector = &budget["spec"]["selector"]["matchLabels"];
        assert!(
            deployments
                .values()
                .any(|d| &d["spec"]["template"]["metadata"]["labels"] == selector),
            "{file}: the budget selects a Deployment's pods"
        );
    }
}

// ---------------------------------------------------------------- pending
