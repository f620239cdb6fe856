using System.Buffers;
using System.IO.Compression;

namespace OllamaContinuity.Failover.Streaming;

/// <summary>
/// Opens a response body for reading within <see cref="ResponseLimits"/>: decompresses it here (the HTTP handler does
/// not, so that the compressed bytes can be counted), and fails the read when the answer, or the decompression ratio,
/// crosses its bound.
/// </summary>
internal static class BoundedBody
{
    /// <summary>What the pool asks servers for (the handler's automatic decompression is off; see <see cref="Open"/>).</summary>
    public const string AcceptEncoding = "gzip, deflate, br";

    public static async Task<Stream> OpenAsync(HttpResponseMessage response, ResponseLimits limits, CancellationToken ct)
    {
        var raw = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        return Open(raw, response.Content.Headers.ContentEncoding, limits);
    }

    public static Stream Open(Stream raw, ICollection<string> contentEncoding, ResponseLimits limits)
    {
        if (contentEncoding.Count == 0 || contentEncoding.All(e => e.Equals("identity", StringComparison.OrdinalIgnoreCase)))
        {
            return new LimitedStream(raw, null, limits);
        }

        var counted = new CountingStream(raw);
        Stream s = counted;
        // Content-Encoding lists the codings in the order they were applied: undo them from the last.
        foreach (var coding in contentEncoding.Reverse())
        {
            s = coding.Trim().ToLowerInvariant() switch
            {
                "gzip" or "x-gzip" => new GZipStream(s, CompressionMode.Decompress),
                "deflate" => new ZLibStream(s, CompressionMode.Decompress),
                "br" => new BrotliStream(s, CompressionMode.Decompress),
                "identity" => s,
                _ => throw new InvalidDataException($"the response uses an unsupported Content-Encoding '{coding}'"),
            };
        }

        return new LimitedStream(s, counted, limits);
    }

    /// <summary>A whole body, at most <paramref name="max"/> bytes; more fails (<paramref name="truncate"/>: the rest is ignored).</summary>
    public static async Task<byte[]> ReadAllAsync(HttpResponseMessage response, ResponseLimits limits, int max, bool truncate, CancellationToken ct)
    {
        var encoded = response.Content.Headers.ContentEncoding.Count > 0;
        if (!encoded && !truncate && response.Content.Headers.ContentLength is long length and >= 0)
        {
            // The usual non-streaming answer: read exactly Content-Length bytes, with no scratch buffer and no copy.
            if (length > max)
            {
                throw LimitedStream.TooLarge(max);
            }

            await using var plain = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            var body = new byte[length];
            await plain.ReadExactlyAsync(body, ct).ConfigureAwait(false);
            return body;
        }

        await using var s = await OpenAsync(response, limits with { MaxResponseBytes = truncate ? int.MaxValue : max }, ct).ConfigureAwait(false);
        using var ms = new MemoryStream();
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int n;
            while ((n = await s.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                if (ms.Length + n > max)
                {
                    if (truncate)
                    {
                        ms.Write(buffer, 0, (int)(max - ms.Length));
                        break;
                    }

                    throw LimitedStream.TooLarge(max);
                }

                ms.Write(buffer, 0, n);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return ms.ToArray();
    }

    /// <summary>Counts the bytes read from the wire (before decompression).</summary>
    private sealed class CountingStream(Stream inner) : ReadOnlyWrapper(inner)
    {
        public long Count;

        protected override void OnRead(int n) => Count += n;
    }

    /// <summary>Counts the decompressed bytes and enforces the answer and ratio bounds.</summary>
    private sealed class LimitedStream(Stream inner, CountingStream? wire, ResponseLimits limits) : ReadOnlyWrapper(inner)
    {
        private long _total;

        protected override void OnRead(int n)
        {
            _total += n;
            if (_total > limits.MaxResponseBytes)
            {
                throw TooLarge(limits.MaxResponseBytes);
            }

            if (wire is not null && _total > limits.RatioFloorBytes && _total > wire.Count * limits.MaxDecompressionRatio)
            {
                throw new ResponseLimitExceededException(nameof(ResponseLimits.MaxDecompressionRatio),
                    $"the compressed response expands more than {limits.MaxDecompressionRatio}:1 (MaxDecompressionRatio; {wire.Count} bytes became over {_total}): a compression bomb");
            }
        }

        public static ResponseLimitExceededException TooLarge(int max) =>
            new(nameof(ResponseLimits.MaxResponseBytes), $"the response is larger than the {max}-byte bound (MaxResponseBytes, -MaxResponseBytes)");
    }

    private abstract class ReadOnlyWrapper(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        protected abstract void OnRead(int n);

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = inner.Read(buffer, offset, count);
            OnRead(n);
            return n;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            OnRead(n);
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            await inner.DisposeAsync().ConfigureAwait(false);
            await base.DisposeAsync().ConfigureAwait(false);
        }
    }
}
