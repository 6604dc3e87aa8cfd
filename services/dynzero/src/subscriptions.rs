//! `dynzero subscriptions list|add|remove|test`: the notifier's run-time
//! subscriptions, stored in PostgreSQL (the running notifier sees a change at
//! the next alert, without a restart). None of these touches the
//! configuration's subscriptions: only `dynzero run` makes those current.

use anyhow::Context;
use clap::{Args, Subcommand};
use dynzero_notifier::pii::PiiPolicy;
use dynzero_notifier::send::{Attempt, Message, Sender};
use dynzero_notifier::settings::Settings;
use dynzero_notifier::store::{self, Listed, Origin};
use dynzero_notifier::subscription::{Subscription, SubscriptionSpec, Target, TargetKind};
use dynzero_notifier::{pii, render};
use dynzero_runtime::config::ConfigError;
use serde_json::json;

#[derive(Subcommand)]
pub enum SubscriptionsCommand {
    /// Every subscription, from the configuration and from the command line.
    List,
    /// Add or replace a run-time subscription.
    Add(AddArgs),
    /// Remove a subscription (its pending deliveries end as failed).
    Remove { name: String },
    /// Send a signed sample alert to a subscription's target and report the answer.
    Test { name: String },
}

#[derive(Args)]
pub struct AddArgs {
    #[arg(long)]
    name: String,
    /// Division prefix: 4, 6, 9 or 12 digits (city, district, street, community).
    #[arg(long)]
    division: String,
    /// Alert kinds (default: all).
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// webhook, wecom, dingtalk or amqp.
    #[arg(long)]
    target: String,
    #[arg(long)]
    url: Option<String>,
    /// `whsec_…` for a webhook; the robot's signing secret for DingTalk.
    #[arg(long, env = "DYNZERO_SUBSCRIPTION_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// masked (default) or full; group bots are always masked.
    #[arg(long, default_value = "masked")]
    pii: String,
}

impl AddArgs {
    fn subscription(&self) -> anyhow::Result<Subscription> {
        let url = || {
            self.url
                .clone()
                .context("--url is required for this target")
        };
        let target = match TargetKind::parse(&self.target) {
            Some(TargetKind::Webhook) => Target::Webhook {
                url: url()?,
                secret: self
                    .secret
                    .clone()
                    .context("--secret whsec_… is required for a webhook")?,
            },
            Some(TargetKind::Wecom) => Target::Wecom { url: url()? },
            Some(TargetKind::Dingtalk) => Target::Dingtalk {
                url: url()?,
                secret: self.secret.clone(),
            },
            Some(TargetKind::Amqp) => Target::Amqp,
            None => anyhow::bail!("--target must be webhook, wecom, dingtalk or amqp"),
        };
        let pii = PiiPolicy::parse(&self.pii).context("--pii must be masked or full")?;
        Ok(Subscription::parse(SubscriptionSpec {
            name: self.name.clone(),
            division: self.division.clone(),
            kinds: self.kinds.clone(),
            target,
            pii,
        })?)
    }
}

pub async fn run(settings: Settings, command: SubscriptionsCommand) -> anyhow::Result<()> {
    let key = settings.security.sealing_key()?;
    // Checked before connecting: a refused target or a missing key is a
    // configuration error whatever the database says.
    let added = match &command {
        SubscriptionsCommand::Add(args) => {
            let subscription = args.subscription()?;
            let policy = settings.notifier.target_policy()?;
            policy
                .check(subscription.target())
                .map_err(|e| ConfigError::new("--url", &e.to_string()))?;
            if key.is_none() && subscription.target().url().is_some() {
                return Err(store::missing_key(subscription.name()).into());
            }
            Some(subscription)
        }
        _ => None,
    };
    let pool = dynzero_notifier::service::connect(&settings.database).await?;
    match command {
        SubscriptionsCommand::List => {
            for listed in store::list_subscriptions(&pool).await? {
                println!("{}", describe(&listed));
            }
        }
        SubscriptionsCommand::Add(_) => {
            let subscription = added.expect("checked above");
            let mut conn = pool.acquire().await?;
            store::upsert_subscription(&mut conn, key.as_ref(), &subscription, Origin::Runtime)
                .await?;
            drop(conn);
            let listed = store::list_subscriptions(&pool)
                .await?
                .into_iter()
                .find(|l| l.name == subscription.name())
                .context("the subscription just added")?;
            println!("{}", describe(&listed));
        }
        SubscriptionsCommand::Remove { name } => {
            if !store::remove_subscription(&pool, &name).await? {
                anyhow::bail!("no subscription named {name:?}");
            }
            println!("removed {name}");
        }
        SubscriptionsCommand::Test { name } => {
            let subscription = store::find_subscription(&pool, key.as_ref(), &name)
                .await?
                .with_context(|| format!("no subscription named {name:?}"))?;
            let outcome = test(&settings, &subscription).await?;
            println!("{name}: {outcome:?}");
            if !matches!(outcome, Attempt::Delivered { .. }) {
                anyhow::bail!("the target did not accept the sample");
            }
        }
    }
    pool.close().await;
    Ok(())
}

fn describe(s: &Listed) -> String {
    let kinds = if s.kinds.is_empty() {
        "all kinds".to_string()
    } else {
        s.kinds.join(",")
    };
    let target = match &s.url {
        None => format!(
            "amqp: bind a queue to dynzero.alerts with {}",
            s.prefix.binding_key(None)
        ),
        Some(url) => format!("{} {url}", s.target_kind),
    };
    format!(
        "{}\t{}\t{}\t{}\tpii={}\t{}",
        s.name,
        s.prefix.as_str(),
        kinds,
        target,
        s.pii,
        s.origin
    )
}

/// A sample alert in the subscription's division, sent now.
async fn test(settings: &Settings, s: &Subscription) -> anyhow::Result<Attempt> {
    let division = format!("{:0<12}", s.prefix().as_str());
    let id = format!("alert/test/{:016x}", rand::random::<u64>());
    let mut event = json!({
        "specversion": "1.0", "id": id, "source": "dynzero", "type": "dynzero.alert.zero_employment_new",
        "subject": "H-TEST", "time": chrono::Utc::now().to_rfc3339(), "datacontenttype": "application/json",
        "data": {
            "kind": "zero_employment_new", "division_code": division, "household_id": "H-TEST",
            "raised_at": chrono::Utc::now().to_rfc3339(),
            "summary": "测试消息：这是 dynzero 通知的样例，无需处理。",
        }
    });
    if s.pii() == PiiPolicy::Masked {
        pii::mask_value(&mut event);
    }
    let sender = Sender::new(&settings.notifier)?;
    Ok(match s.target() {
        Target::Amqp => {
            println!(
                "amqp: nothing to send; bind a queue to {} with {}",
                settings.amqp.alerts_exchange,
                s.prefix().binding_key(None)
            );
            Attempt::Delivered { status: 0 }
        }
        Target::Webhook { .. } => {
            let body = serde_json::to_vec(&event)?;
            sender
                .send(
                    s.target(),
                    Message::Event {
                        id: &id,
                        body: &body,
                        traceparent: None,
                    },
                )
                .await
        }
        Target::Wecom { .. } | Target::Dingtalk { .. } => {
            let (title, text) = render::alert_markdown(&event);
            sender
                .send(
                    s.target(),
                    Message::Markdown {
                        title: &title,
                        text: &text,
                    },
                )
                .await
        }
    })
}
