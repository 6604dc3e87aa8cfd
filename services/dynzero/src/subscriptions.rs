//! `dynzero subscriptions list|add|remove|test`: the notifier's run-time
//! subscriptions, stored in PostgreSQL (the running notifier sees a change at
//! the next alert, without a restart).

use anyhow::Context;
use clap::{Args, Subcommand};
use dynzero_notifier::pii::PiiPolicy;
use dynzero_notifier::send::{Attempt, Message, Sender};
use dynzero_notifier::settings::Settings;
use dynzero_notifier::store::{self, Origin};
use dynzero_notifier::subscription::{
    Subscription, SubscriptionSpec, Target, TargetKind, redact_url,
};
use dynzero_notifier::{pii, render};
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
    fn subscription(self) -> anyhow::Result<Subscription> {
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
            name: self.name,
            division: self.division,
            kinds: self.kinds,
            target,
            pii,
        })?)
    }
}

pub async fn run(settings: Settings, command: SubscriptionsCommand) -> anyhow::Result<()> {
    let configured = dynzero_notifier::service::configured(&settings)?;
    let pool = dynzero_notifier::service::connect(&settings.database).await?;
    // What the configuration says is current here too, as `dynzero run` makes it.
    store::sync_config(&pool, &configured).await?;
    match command {
        SubscriptionsCommand::List => {
            for stored in store::list_subscriptions(&pool).await? {
                println!("{}", describe(&stored.subscription, &stored.origin));
            }
        }
        SubscriptionsCommand::Add(args) => {
            let subscription = args.subscription()?;
            store::upsert_subscription(&pool, &subscription, Origin::Runtime).await?;
            println!("{}", describe(&subscription, "runtime"));
        }
        SubscriptionsCommand::Remove { name } => {
            if !store::remove_subscription(&pool, &name).await? {
                anyhow::bail!("no subscription named {name:?}");
            }
            println!("removed {name}");
        }
        SubscriptionsCommand::Test { name } => {
            let stored = store::list_subscriptions(&pool)
                .await?
                .into_iter()
                .find(|s| s.subscription.name() == name)
                .with_context(|| format!("no subscription named {name:?}"))?;
            let outcome = test(&settings, &stored.subscription).await?;
            println!("{name}: {outcome:?}");
            if !matches!(outcome, Attempt::Delivered { .. }) {
                anyhow::bail!("the target did not accept the sample");
            }
        }
    }
    pool.close().await;
    Ok(())
}

fn describe(s: &Subscription, origin: &str) -> String {
    let kinds = if s.kinds().is_empty() {
        "all kinds".to_string()
    } else {
        s.kind_words().join(",")
    };
    let target = match s.target() {
        Target::Amqp => format!(
            "amqp: bind a queue to dynzero.alerts with {}",
            s.prefix().binding_key(None)
        ),
        other => format!(
            "{} {}",
            other.kind().as_str(),
            redact_url(other.url().unwrap_or_default())
        ),
    };
    format!(
        "{}\t{}\t{}\t{}\tpii={}\t{}",
        s.name(),
        s.prefix().as_str(),
        kinds,
        target,
        s.pii().as_str(),
        origin
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
    let sender = Sender::new(settings.notifier.request_timeout())?;
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
