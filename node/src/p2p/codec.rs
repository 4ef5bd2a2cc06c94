//! The request-response codec of the node's protocols: length-bounded raw bytes.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;

use crate::p2p::wire::{MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};

/// The request-response codec: length-bounded raw bytes, decoded by [`crate::p2p::wire`] (sync and
/// SN protocols) or [`crate::storage::sync`] (storage protocol).
#[derive(Clone)]
pub struct BytesCodec {
    /// Largest inbound request.
    pub max_request: u64,
    /// Largest answer taken.
    pub max_response: u64,
}

impl Default for BytesCodec {
    fn default() -> BytesCodec {
        BytesCodec {
            max_request: MAX_REQUEST_BYTES,
            max_response: MAX_RESPONSE_BYTES,
        }
    }
}

/// Largest answer on the SN-only protocol (a pong or a refusal: a few dozen bytes).
pub const MAX_SN_RESPONSE_BYTES: u64 = 4096;

/// Largest storage request between swarm members: a client request (10 MiB) and a tag.
pub const MAX_STORAGE_REQUEST_BYTES: u64 = 10 * 1024 * 1024 + 64;

/// What the codec hands up for an inbound request over the size limit (libp2p only logs codec
/// read errors, so the handler would never hear of it). It never decodes as a request.
pub const OVERSIZED_REQUEST: &[u8] = b"\xfeoversized";

async fn read_limited<T: AsyncRead + Unpin + Send>(io: &mut T, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(limit + 1).read_to_end(&mut buf).await?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message exceeds the size limit",
        ));
    }
    Ok(buf)
}

impl request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        match read_limited(io, self.max_request).await {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(OVERSIZED_REQUEST.to_vec()),
            other => other,
        }
    }
    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_limited(io, self.max_response).await
    }
    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&req).await?;
        io.close().await
    }
    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&res).await?;
        io.close().await
    }
}
