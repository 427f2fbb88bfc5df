//! The reader over an `AsyncRead`: reads straight into its buffer until
//! the next response is whole.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{BadResponse, Method, Response, ResponseReader, Summary};

/// Room made for each read. Once the buffer has grown to it, reading
/// allocates nothing more.
const READ_SIZE: usize = 8 * 1024;

impl ResponseReader {
    /// One read from `io` into the buffer. Returns the bytes read; 0 means
    /// the server closed, and the reader is [ended](Self::end).
    pub async fn fill_from<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> std::io::Result<usize> {
        self.compact();
        // A no-op once the capacity is there: no allocation per read.
        self.buf_mut().reserve(READ_SIZE);
        let n = io.read_buf(self.buf_mut()).await?;
        if n == 0 {
            self.end();
        }
        Ok(n)
    }

    /// Reads from `io` until the next response is whole, and returns it
    /// (1xx ones included). `Ok(None)`: the server closed with nothing
    /// more. Malformed bytes are an `InvalidData` error.
    pub async fn read_response<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        method: Method,
    ) -> std::io::Result<Option<Response>> {
        self.read_until(io, |r| r.next(method)).await
    }

    /// [`read_response`](Self::read_response), but only the summary:
    /// allocates nothing once the buffer has grown.
    pub async fn read_summary<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        method: Method,
    ) -> std::io::Result<Option<Summary>> {
        self.read_until(io, |r| r.next_summary(method)).await
    }

    async fn read_until<R: AsyncRead + Unpin, T>(
        &mut self,
        io: &mut R,
        mut take: impl FnMut(&mut Self) -> Result<Option<T>, BadResponse>,
    ) -> std::io::Result<Option<T>> {
        loop {
            let found =
                take(self).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            if found.is_some() || self.is_ended() {
                return Ok(found);
            }
            self.fill_from(io).await?;
        }
    }
}
