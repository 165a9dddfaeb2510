//! The paging parameters of the list operations: `pageNo` / `pageSize`, and the `nextToken` / `size`
//! of the custom-authentication queries (Alibaba's form).

use crate::error::{ApiError, ApiResult};

/// A checked page request: `pageNo` from 1, `pageSize` 1 to 100.
pub struct Page {
    pub no: u32,
    pub size: u32,
}

impl Page {
    pub fn new(page_no: Option<u32>, page_size: Option<u32>, default_size: u32) -> ApiResult<Self> {
        let no = page_no.unwrap_or(1);
        let size = page_size.unwrap_or(default_size);
        if no < 1 {
            return Err(ApiError::invalid("pageNo", "must be at least 1"));
        }
        if !(1..=100).contains(&size) {
            return Err(ApiError::invalid("pageSize", "must be 1 to 100"));
        }
        Ok(Self { no, size })
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.size)
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.no - 1) * i64::from(self.size)
    }
}

/// A `nextToken` / `size` page: the token is the offset of the next item.
pub struct TokenPage {
    offset: i64,
    size: i64,
}

impl TokenPage {
    pub fn new(next_token: Option<&str>, size: Option<u32>) -> ApiResult<Self> {
        let offset = match next_token {
            None | Some("") => 0,
            Some(t) => t
                .parse::<i64>()
                .ok()
                .filter(|o| *o >= 0)
                .ok_or_else(|| ApiError::invalid("nextToken", "is not a token this API gave"))?,
        };
        let size = size.unwrap_or(100);
        if !(1..=100).contains(&size) {
            return Err(ApiError::invalid("size", "must be 1 to 100"));
        }
        Ok(Self {
            offset,
            size: i64::from(size),
        })
    }

    /// One more row than the page is read, to know whether another page follows.
    pub fn limit(&self) -> i64 {
        self.size + 1
    }

    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The page's rows and the token of the next page, if any.
    pub fn split<T>(&self, mut rows: Vec<T>) -> (Vec<T>, Option<String>) {
        let more = rows.len() as i64 > self.size;
        rows.truncate(self.size as usize);
        (rows, more.then(|| (self.offset + self.size).to_string()))
    }
}
