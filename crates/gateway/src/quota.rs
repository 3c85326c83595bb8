//! Usage-plan quotas per API key: requests per UTC day and per UTC month,
//! counted in memory on this node (a shared counter comes with Redis).

use gatehouse_core::time::days_from_civil;
use std::collections::HashMap;
use std::sync::Mutex;

/// (year, month) of a day number.
fn civil_month(days: i64) -> (i64, i64) {
    let (y, m, _) = gatehouse_core::time::civil_from_days(days);
    (y, m)
}

/// Counters per key and period.
#[derive(Default)]
pub struct Quotas {
    counts: Mutex<HashMap<(String, char, i64), u64>>,
}

impl Quotas {
    /// Counts one request of `key`; when a quota is exhausted returns the
    /// seconds until its period ends (and does not count it).
    pub fn take(
        &self,
        key: &str,
        per_day: Option<u64>,
        per_month: Option<u64>,
        now: i64,
    ) -> Result<(), u64> {
        let day = now.div_euclid(86_400);
        let (y, m) = civil_month(day);
        let month_id = y * 12 + m;
        let next_month = if m == 12 {
            days_from_civil(y + 1, 1, 1)
        } else {
            days_from_civil(y, m + 1, 1)
        };
        let Ok(mut c) = self.counts.lock() else {
            return Ok(());
        };
        let d = c.get(&(key.to_owned(), 'd', day)).copied().unwrap_or(0);
        let mo = c
            .get(&(key.to_owned(), 'm', month_id))
            .copied()
            .unwrap_or(0);
        if per_day.is_some_and(|q| d >= q) {
            return Err(((day + 1) * 86_400 - now) as u64);
        }
        if per_month.is_some_and(|q| mo >= q) {
            return Err((next_month * 86_400 - now) as u64);
        }
        if per_day.is_some() {
            c.insert((key.to_owned(), 'd', day), d + 1);
        }
        if per_month.is_some() {
            c.insert((key.to_owned(), 'm', month_id), mo + 1);
        }
        // Forget past periods.
        c.retain(|(_, kind, p), _| {
            if *kind == 'd' {
                *p >= day
            } else {
                *p >= month_id
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_and_monthly_quotas() {
        let q = Quotas::default();
        let t = 1_706_745_599; // 2024-01-31 23:59:59 UTC
        assert!(q.take("k", Some(2), None, t).is_ok());
        assert!(q.take("k", Some(2), None, t).is_ok());
        assert_eq!(
            q.take("k", Some(2), None, t),
            Err(1),
            "one second to midnight"
        );
        assert!(q.take("k", Some(2), None, t + 1).is_ok(), "a new day");
        let q = Quotas::default();
        assert!(q.take("m", None, Some(1), t).is_ok());
        assert_eq!(
            q.take("m", None, Some(1), t),
            Err(1),
            "the month ends at midnight too"
        );
        assert_eq!(civil_month(days_from_civil(2024, 2, 29)), (2024, 2));
    }
}
