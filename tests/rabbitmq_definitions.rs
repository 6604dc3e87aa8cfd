//! `deploy/rabbitmq/definitions.json`, imported into a throwaway vhost of the
//! local broker (vhost and user names rewritten to unique ones, passwords
//! set by the test): the hub's own declarations match it argument for
//! argument, and each user can do what its role needs and nothing more.
//!
//! The import goes through `rabbitmqctl`, so the broker under test is the
//! one `rabbitmqctl` reaches on this machine (the shared local broker).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use dynzero_tests::{amqp_url, eventually};
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use serde_json::Value;
use sha2::{Digest, Sha256};

const DEADLINE: Duration = Duration::from_secs(30);
/// The vhost the committed file defines.
const VHOST: &str = "dynzero";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn definitions() -> Value {
    let path = repo_file("deploy/rabbitmq/definitions.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn default_config() -> toml::Table {
    let path = repo_file("config/default.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()))
}

/// The hub's `[amqp]` settings as config/default.toml gives them.
fn amqp_settings() -> dynzero_reconciler::settings::AmqpSettings {
    let amqp = default_config()["amqp"].clone();
    amqp.try_into()
        .unwrap_or_else(|e| panic!("[amqp] of config/default.toml: {e}"))
}

fn notifier_settings() -> dynzero_notifier::settings::Settings {
    toml::Value::Table(default_config())
        .try_into()
        .unwrap_or_else(|e| panic!("config/default.toml as the notifier's settings: {e}"))
}

fn names(defs: &Value, section: &str) -> BTreeSet<String> {
    defs[section]
        .as_array()
        .unwrap_or_else(|| panic!("definitions have no {section:?} list"))
        .iter()
        .map(|x| x["name"].as_str().expect("a name").to_owned())
        .collect()
}

/// RabbitMQ checks `write` on the exchange a message is published to (an
/// unanchored regular expression): sources may write to `dynzero.inbound`
/// alone, and only the hub's user to `dynzero.households` and `dynzero.alerts`.
#[test]
fn only_the_hub_publishes_states_and_alerts_and_sources_only_inbound() {
    let defs = definitions();
    let exchanges = names(&defs, "exchanges");
    let mut sources = 0;
    for permission in defs["permissions"].as_array().expect("permissions") {
        let user = permission["user"].as_str().expect("a user");
        let write = regex::Regex::new(permission["write"].as_str().expect("a write pattern"))
            .expect("a regular expression");
        let writable: BTreeSet<&str> = exchanges
            .iter()
            .map(String::as_str)
            .filter(|e| write.is_match(e))
            .collect();
        if user == "dynzero-hub" {
            for exchange in ["dynzero.households", "dynzero.alerts", "dynzero.rejected"] {
                assert!(
                    writable.contains(exchange),
                    "the hub publishes to {exchange}"
                );
            }
        } else if user.starts_with("dynzero-source-") {
            sources += 1;
            assert_eq!(writable, BTreeSet::from(["dynzero.inbound"]), "{user}");
        } else {
            for exchange in ["dynzero.households", "dynzero.alerts"] {
                assert!(
                    !writable.contains(exchange),
                    "{user} may publish to {exchange}"
                );
            }
        }
    }
    assert!(sources >= 4, "the four sources have permissions");
}

#[test]
fn definitions_name_the_exchanges_and_queues_of_the_default_configuration() {
    let defs = definitions();
    let amqp = amqp_settings();
    let notifier = notifier_settings();
    let exchanges: BTreeSet<String> = [
        &amqp.inbound_exchange,
        &amqp.households_exchange,
        &amqp.alerts_exchange,
        &amqp.rejected_exchange,
    ]
    .into_iter()
    .cloned()
    .collect();
    assert_eq!(names(&defs, "exchanges"), exchanges);
    let queues: BTreeSet<String> = [
        amqp.queue.clone(),
        amqp.rejected_queue.clone(),
        notifier.queue(),
    ]
    .into_iter()
    .collect();
    assert_eq!(names(&defs, "queues"), queues);
    let reconciler = defs["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == amqp.queue.as_str())
        .unwrap();
    assert_eq!(
        reconciler["arguments"]["x-delivery-limit"], amqp.broker_delivery_limit,
        "x-delivery-limit is amqp.broker_delivery_limit"
    );
    for user in defs["users"].as_array().unwrap() {
        assert_eq!(
            user["password_hash"], "",
            "no password is committed: {} gets one at deployment",
            user["name"]
        );
    }
}

/// A unique vhost and users made from the committed definitions, removed
/// again when dropped (also when the test fails).
struct Imported {
    vhost: String,
    prefix: String,
    password: String,
    users: Vec<String>,
}

impl Imported {
    fn import() -> Imported {
        let hex = format!("{:016x}", rand::random::<u64>());
        let vhost = format!("t.definitions.{hex}");
        let prefix = format!("t-{hex}-");
        let password = format!("pw-{hex}");
        let mut defs = definitions();
        let users = rewrite(&mut defs, &vhost, &prefix, &password_hash(&password));
        let file = std::env::temp_dir().join(format!("{vhost}.json"));
        std::fs::write(&file, defs.to_string()).expect("write the rewritten definitions");
        let imported = Imported {
            vhost,
            prefix,
            password,
            users,
        };
        let status = Command::new("rabbitmqctl")
            .args(["-q", "import_definitions"])
            .arg(&file)
            .status()
            .expect("rabbitmqctl runs");
        let _ = std::fs::remove_file(&file);
        assert!(status.success(), "rabbitmqctl import_definitions failed");
        imported
    }

    fn url(&self, role: &str) -> String {
        let mut url = url::Url::parse(&amqp_url()).expect("the test broker URL");
        url.set_username(&format!("{}{role}", self.prefix)).unwrap();
        url.set_password(Some(&self.password)).unwrap();
        url.set_path(&format!("/{}", self.vhost));
        url.into()
    }

    async fn channel(&self, role: &str) -> (Connection, Channel) {
        let connection = Connection::connect(&self.url(role), ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("{role} cannot connect to the vhost: {e}"));
        let channel = connection.create_channel().await.expect("a channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        (connection, channel)
    }
}

impl Drop for Imported {
    fn drop(&mut self) {
        // rabbitmqctl takes a while to start; the removals run side by side.
        let mut jobs = vec![
            Command::new("rabbitmqctl")
                .args(["-q", "delete_vhost", &self.vhost])
                .spawn(),
        ];
        for user in &self.users {
            jobs.push(
                Command::new("rabbitmqctl")
                    .args(["-q", "delete_user", user])
                    .spawn(),
            );
        }
        for job in jobs {
            match job.and_then(|mut child| child.wait()) {
                Ok(status) if status.success() => {}
                other => eprintln!("cleanup of {} incomplete: {other:?}", self.vhost),
            }
        }
    }
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt ‖ SHA-256(salt ‖ password)).
fn password_hash(password: &str) -> String {
    let salt: [u8; 4] = rand::random();
    let mut salted = salt.to_vec();
    salted.extend_from_slice(
        &Sha256::new_with_prefix(salt)
            .chain_update(password)
            .finalize(),
    );
    base64::engine::general_purpose::STANDARD.encode(salted)
}

/// Puts everything in `vhost`, prefixes every user name with `prefix` and
/// gives each user `hash`; returns the new user names.
fn rewrite(defs: &mut Value, vhost: &str, prefix: &str, hash: &str) -> Vec<String> {
    for v in defs["vhosts"].as_array_mut().unwrap() {
        assert_eq!(v["name"], VHOST);
        v["name"] = vhost.into();
    }
    for section in [
        "exchanges",
        "queues",
        "bindings",
        "permissions",
        "topic_permissions",
    ] {
        for x in defs[section].as_array_mut().unwrap() {
            assert_eq!(x["vhost"], VHOST, "{section} entry outside the vhost: {x}");
            x["vhost"] = vhost.into();
        }
    }
    for section in ["permissions", "topic_permissions"] {
        for x in defs[section].as_array_mut().unwrap() {
            x["user"] = format!("{prefix}{}", x["user"].as_str().unwrap()).into();
        }
    }
    let mut users = Vec::new();
    for u in defs["users"].as_array_mut().unwrap() {
        let name = format!("{prefix}{}", u["name"].as_str().unwrap());
        u["name"] = name.clone().into();
        u["password_hash"] = hash.into();
        users.push(name);
    }
    users
}

/// Publishes with confirms; `Ok(true)` when routed to some queue, `Ok(false)`
/// when unroutable, `Err` when the broker refused (and closed the channel).
async fn publish(channel: &Channel, exchange: &str, key: &str) -> Result<bool, lapin::Error> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"{}",
            BasicProperties::default(),
        )
        .await?
        .await?;
    Ok(matches!(confirm, Confirmation::Ack(None)))
}

fn refused(result: Result<impl std::fmt::Debug, lapin::Error>, what: &str) {
    match result {
        Err(e) => assert!(
            e.to_string().contains("ACCESS_REFUSED") || e.to_string().contains("403"),
            "{what}: refused, but not for access: {e}"
        ),
        Ok(v) => panic!("{what} was allowed: {v:?}"),
    }
}

#[tokio::test]
async fn definitions_give_each_user_least_privilege_in_a_throwaway_vhost() {
    let imported = Imported::import();
    // The import is asynchronous: wait until a source's layoff is routed to
    // the reconciler's queue (users, vhost, exchanges, queues, bindings exist).
    let (_source, hr) = eventually(DEADLINE, "the definitions imported", || async {
        let url = imported.url("dynzero-source-hr");
        let connection = Connection::connect(&url, ConnectionProperties::default())
            .await
            .ok()?;
        let channel = connection.create_channel().await.ok()?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .ok()?;
        let routed = publish(&channel, "dynzero.inbound", "layoff.notice").await;
        routed.ok().filter(|routed| *routed)?;
        Some((connection, channel))
    })
    .await;

    hub_declares_exactly_the_imported_topology(&imported).await;

    assert!(
        publish(&hr, "dynzero.inbound", "employment.ended")
            .await
            .expect("an HR system publishes its own types to dynzero.inbound")
    );
    refused(
        publish(
            &hr,
            "dynzero.alerts",
            "zero_employment_new.21.03.02.001.002",
        )
        .await,
        "a source publishing to dynzero.alerts",
    );
    let (_c, hr) = imported.channel("dynzero-source-hr").await;
    refused(
        publish(&hr, "dynzero.households", "state.21.03.02.001.002").await,
        "a source publishing to dynzero.households",
    );
    let (_c, hr) = imported.channel("dynzero-source-hr").await;
    refused(
        publish(&hr, "dynzero.inbound", "subsidy.changed").await,
        "an HR system publishing a civil-affairs type",
    );
    let (_c, jobs) = imported.channel("dynzero-source-jobs").await;
    refused(
        declare(&jobs, "dynzero.jobs-own-queue").await,
        "a source declaring a queue",
    );

    reader_reads_its_own_districts_alerts_only(&imported).await;

    let (_c, monitor) = imported.channel("dynzero-monitor").await;
    let depth = monitor
        .queue_declare(
            "dynzero.reconciler".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the monitoring user inspects the queue's depth, as KEDA does");
    assert!(
        depth.message_count() >= 1,
        "the layoffs published above wait"
    );
    refused(
        consume(&monitor, "dynzero.reconciler").await,
        "the monitoring user consuming the reconciler's queue",
    );
}

async fn hub_declares_exactly_the_imported_topology(imported: &Imported) {
    let (connection, hub) = imported.channel("dynzero-hub").await;
    // Any argument that differs from the definitions closes the channel
    // with PRECONDITION_FAILED.
    dynzero_reconciler::amqp::declare_topology(&hub, &amqp_settings())
        .await
        .expect("the reconciler's declarations equal the definitions");
    // The rejected queue is a quorum queue in both (declare_rejected_queue
    // keeps a mismatching one with a warning, so declare it as it does).
    dynzero_runtime::amqp::declare_quorum_queue(
        &hub,
        &amqp_settings().rejected_queue,
        lapin::types::FieldTable::default(),
    )
    .await
    .expect("the rejected queue is declared as in the definitions");
    dynzero_reconciler::amqp::declare_rejected_queue(&connection, &amqp_settings())
        .await
        .expect("the hub binds the rejected queue");
    dynzero_notifier::consumer::declare(&hub, &notifier_settings())
        .await
        .expect("the notifier's declarations equal the definitions");
    consume(&hub, "dynzero.reconciler")
        .await
        .expect("the hub consumes its queue");
    assert!(
        publish(&hub, "dynzero.alerts", "job_match.21.03.02.001.002")
            .await
            .expect("the hub publishes alerts"),
        "an alert reaches dynzero.notifier"
    );
    refused(
        declare(&hub, "elsewhere.queue").await,
        "the hub declaring a queue outside dynzero.*",
    );
}

async fn reader_reads_its_own_districts_alerts_only(imported: &Imported) {
    let (_c, reader) = imported.channel("dynzero-reader-tiexi").await;
    declare(&reader, "tiexi.alerts")
        .await
        .expect("a reader declares its own queue");
    bind(&reader, "tiexi.alerts", "dynzero.alerts", "*.21.03.02.#")
        .await
        .expect("the Tiexi reader binds its district's alerts");
    bind(
        &reader,
        "tiexi.alerts",
        "dynzero.households",
        "state.21.03.02.001.*",
    )
    .await
    .expect("the Tiexi reader binds its streets' states");
    consume(&reader, "tiexi.alerts")
        .await
        .expect("a reader consumes its own queue");
    refused(
        bind(&reader, "tiexi.alerts", "dynzero.alerts", "#").await,
        "the Tiexi reader binding every district's alerts",
    );
    let (_c, reader) = imported.channel("dynzero-reader-tiexi").await;
    refused(
        consume(&reader, "dynzero.notifier").await,
        "a reader consuming the notifier's queue",
    );
    let (_c, reader) = imported.channel("dynzero-reader-tiexi").await;
    refused(
        publish(&reader, "dynzero.inbound", "household.visited").await,
        "a reader publishing inbound",
    );
    for exchange in ["dynzero.alerts", "dynzero.households"] {
        let (_c, reader) = imported.channel("dynzero-reader-tiexi").await;
        refused(
            publish(&reader, exchange, "household_at_risk.21.03.02.001.002").await,
            &format!("a reader publishing to {exchange}"),
        );
    }
}

async fn declare(channel: &Channel, queue: &str) -> Result<(), lapin::Error> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map(|_| ())
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
) -> Result<(), lapin::Error> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

async fn consume(channel: &Channel, queue: &str) -> Result<(), lapin::Error> {
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map(|_| ())
}
