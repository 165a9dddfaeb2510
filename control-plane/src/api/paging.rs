//! The `pageNo` / `pageSize` parameters of the paged list operations.

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
