//! Reports over a date range: real queries, run step by step so a progress stream can report
//! as it goes.

use arbor::ApiError;
use serde::Serialize;

use crate::db::{Db, DbResultExt};

/// Activity in a date range.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Users who signed up.
    pub new_users: i64,
    /// Posts written.
    pub new_posts: i64,
    /// Posts edited (written before, changed in the range).
    pub edited_posts: i64,
}

/// One author's activity.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AuthorActivity {
    /// The author's id.
    pub author_id: String,
    /// Their name.
    pub name: String,
    /// Posts written in the range.
    pub posts: i64,
}

/// The report service.
#[derive(Debug, Clone)]
pub struct Reports {
    db: Db,
}

impl Reports {
    /// A service over `db`: every query only reads, so the app gives it the read replica
    /// when there is one.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Counts of new users, posts and edits between `from` and `to` (unix ms, inclusive).
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn summary(&self, from: i64, to: i64) -> Result<Summary, ApiError> {
        let count = |sql: &'static str| {
            let db = self.db.clone();
            async move {
                sqlx::query_as::<_, (i64,)>(sql)
                    .bind(from)
                    .bind(to)
                    .fetch_one(&db)
                    .await
                    .map(|row| row.0)
                    .or_db()
            }
        };
        Ok(Summary {
            new_users: count("SELECT COUNT(*) FROM users WHERE created_at BETWEEN $1 AND $2")
                .await?,
            new_posts: count("SELECT COUNT(*) FROM posts WHERE created_at BETWEEN $1 AND $2")
                .await?,
            edited_posts: count(
                "SELECT COUNT(*) FROM posts WHERE updated_at BETWEEN $1 AND $2 AND version > 1",
            )
            .await?,
        })
    }

    /// The ten most active authors in the range.
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn top_authors(&self, from: i64, to: i64) -> Result<Vec<AuthorActivity>, ApiError> {
        sqlx::query_as::<_, AuthorActivity>(
            "SELECT p.author_id AS author_id, u.name AS name, COUNT(*) AS posts FROM posts p JOIN users u ON u.id = p.author_id \
             WHERE p.created_at BETWEEN $1 AND $2 GROUP BY p.author_id, u.name ORDER BY COUNT(*) DESC, u.name LIMIT 10",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.db)
        .await
        .or_db()
    }
}

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The top authors as CSV: a `author_id,name,posts` header, then one line per author; a name
/// with a comma, a quote or a newline is quoted (quotes doubled).
pub fn authors_csv(authors: &[AuthorActivity]) -> String {
    let mut csv = String::from("author_id,name,posts\n");
    for author in authors {
        csv.push_str(&format!(
            "{},{},{}\n",
            author.author_id,
            csv_field(&author.name),
            author.posts
        ));
    }
    csv
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// The unix milliseconds from midnight UTC at the start of `from` to the last millisecond of
/// `to` (both `YYYY-MM-DD`), so that the whole last day is included; `None` if either is not a
/// date.
pub fn whole_days(from: &str, to: &str) -> Option<(i64, i64)> {
    Some((parse_date(from)?, parse_date(to)? + DAY_MS - 1))
}

/// Unix milliseconds of midnight UTC at the start of a `YYYY-MM-DD` date.
pub fn parse_date(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let (year, month, day): (i64, u32, u32) =
        (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month[month as usize - 1] {
        return None;
    }
    Some(days_from_civil(year, month, day) * DAY_MS)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::{authors_csv, parse_date, whole_days, AuthorActivity};

    #[test]
    fn parses_calendar_dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(951_868_800_000));
        assert_eq!(parse_date("2024-02-29"), Some(1_709_164_800_000));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "nope",
            "2024-04-31",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges_cover_whole_days() {
        assert_eq!(
            whole_days("1970-01-01", "1970-01-02"),
            Some((0, 2 * 86_400_000 - 1))
        );
        assert_eq!(whole_days("2024-02-29", "2023-02-29"), None);
        assert_eq!(whole_days("nope", "2024-01-01"), None);
    }

    #[test]
    fn csv_quotes_names_that_need_it() {
        let author = |id: &str, name: &str, posts| AuthorActivity {
            author_id: id.into(),
            name: name.into(),
            posts,
        };
        assert_eq!(
            authors_csv(&[
                author("a", "Ada", 3),
                author("b", "Lovelace, Ada", 2),
                author("c", "The \"Countess\"", 1),
            ]),
            "author_id,name,posts\na,Ada,3\nb,\"Lovelace, Ada\",2\nc,\"The \"\"Countess\"\"\",1\n"
        );
        assert_eq!(authors_csv(&[]), "author_id,name,posts\n");
    }
}
