//! A store that fails on purpose, for the error-path tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use sightline_model::prices::PriceTable;
use sightline_model::{LlmCall, TraceId};
use sightline_store::{
    Filter, Page, PageRequest, SessionDetail, SessionSummary, Store, StoreError, TraceDetail,
    TraceSummary, UserSummary, WriteBatch, WriteReceipt,
};

/// How the test store fails.
#[derive(Clone, Copy)]
pub enum Failure {
    Unavailable,
    Internal,
    BadCursor,
    Hang,
}

/// A store whose every read fails the same way, counting the reads it was asked for.
pub struct FailingStore {
    failure: Failure,
    /// Reads the store was asked for.
    pub reads: AtomicUsize,
}

impl FailingStore {
    pub fn new(failure: Failure) -> Arc<Self> {
        Arc::new(Self {
            failure,
            reads: AtomicUsize::new(0),
        })
    }

    async fn fail<T>(&self) -> Result<T, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        match self.failure {
            Failure::Unavailable => Err(StoreError::Unavailable("writer queue full".into())),
            Failure::Internal => Err(StoreError::Database(
                "no such table: spans_v2 at /var/lib/secret.db".into(),
            )),
            Failure::BadCursor => Err(StoreError::InvalidInput {
                field: "cursor",
                message: "not a cursor this store issued".into(),
            }),
            Failure::Hang => std::future::pending().await,
        }
    }
}

#[async_trait]
impl Store for FailingStore {
    async fn write(&self, _batch: WriteBatch) -> Result<WriteReceipt, StoreError> {
        self.fail().await
    }
    async fn list_traces(
        &self,
        _: &Filter,
        _: &PageRequest,
    ) -> Result<Page<TraceSummary>, StoreError> {
        self.fail().await
    }
    async fn get_trace(&self, _: &str, _: TraceId) -> Result<Option<TraceDetail>, StoreError> {
        self.fail().await
    }
    async fn list_calls(&self, _: &Filter, _: &PageRequest) -> Result<Page<LlmCall>, StoreError> {
        self.fail().await
    }
    async fn list_sessions(
        &self,
        _: &Filter,
        _: &PageRequest,
    ) -> Result<Page<SessionSummary>, StoreError> {
        self.fail().await
    }
    async fn get_session(&self, _: &str, _: &str) -> Result<Option<SessionDetail>, StoreError> {
        self.fail().await
    }
    async fn list_users(
        &self,
        _: &Filter,
        _: &PageRequest,
    ) -> Result<Page<UserSummary>, StoreError> {
        self.fail().await
    }
    async fn rollups(
        &self,
        _: &sightline_store::RollupQuery,
    ) -> Result<Vec<sightline_store::RollupRow>, StoreError> {
        self.fail().await
    }
    async fn write_metrics(
        &self,
        _: Vec<sightline_store::MetricPoint>,
    ) -> Result<usize, StoreError> {
        self.fail().await
    }
    async fn metric_series(
        &self,
        _: &sightline_store::MetricQuery,
    ) -> Result<Vec<sightline_store::MetricSeries>, StoreError> {
        self.fail().await
    }
    async fn recompute_costs(&self, _: &PriceTable) -> Result<u64, StoreError> {
        self.fail().await
    }
    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
