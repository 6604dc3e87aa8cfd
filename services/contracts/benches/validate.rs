//! Schema validation cost of the largest inbound message the contract allows:
//! a `layoff.notice` listing 10,000 employees.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dynzero_contracts::{event_type::EventType, schemas::Schemas};
use serde_json::{Value, json};

/// A GB 11643 identity number for the `n`th employee, check character included.
fn id_number(n: u32) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let day = 1 + n % 28;
    let month = 1 + (n / 28) % 12;
    let year = 1965 + (n / 336) % 40;
    let body = format!("210303{year:04}{month:02}{day:02}{:03}", n % 1000);
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = char::from(b"10X98765432"[(sum % 11) as usize]);
    format!("{body}{check}")
}

fn layoff_notice(employees: u32) -> Value {
    let surnames = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"];
    let given = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军"];
    json!({
        "notice_id": "CY-2025-031",
        "stage": "planned",
        "effective_date": "2025-09-01",
        "enterprise": {
            "uscc": "91210300MA0YBK2N3Y",
            "name": "鞍山市鑫达机械制造有限公司",
            "headcount": 24000,
            "division_code": "210303000000"
        },
        "employees": (0..employees)
            .map(|n| json!({
                "id_number": id_number(n),
                "name": format!("{}{}", surnames[(n % 10) as usize], given[(n / 10 % 10) as usize]),
            }))
            .collect::<Vec<_>>(),
    })
}

fn validate(c: &mut Criterion) {
    let schemas = Schemas::get();
    let data = layoff_notice(10_000);
    schemas
        .validate_inbound(EventType::LayoffNotice, &data)
        .expect("the generated notice is valid");

    let mut group = c.benchmark_group("validate_inbound");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("layoff.notice/10000_employees", |b| {
        b.iter(|| schemas.validate_inbound(EventType::LayoffNotice, black_box(&data)))
    });
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
