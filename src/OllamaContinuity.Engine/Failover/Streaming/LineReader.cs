using System.Buffers;
using System.Text;

namespace OllamaContinuity.Failover.Streaming;

/// <summary>
/// Reads UTF-8 lines (ending in LF or CRLF) from a stream, keeping at most <see cref="ResponseLimits.MaxLineBytes"/>
/// of one line: an endless line is a failure, not a memory leak. <c>beforeWait</c> runs whenever the next read cannot
/// complete at once (nothing more has arrived), just before the reader waits for it.
/// </summary>
internal sealed class LineReader : IDisposable
{
    private readonly Stream _stream;
    private readonly int _maxLine;
    private readonly Action? _beforeWait;
    private byte[] _buffer;
    private int _start;
    private int _end;
    private bool _eof;

    public LineReader(Stream stream, int maxLineBytes, Action? beforeWait = null)
    {
        _stream = stream;
        _maxLine = maxLineBytes;
        _beforeWait = beforeWait;
        _buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
    }

    /// <summary>The next line without its terminator, or null at the end of the stream.</summary>
    public async ValueTask<string?> ReadLineAsync(CancellationToken ct)
    {
        var scanFrom = _start;
        while (true)
        {
            var nl = Array.IndexOf(_buffer, (byte)'\n', scanFrom, _end - scanFrom);
            if (nl >= 0)
            {
                var len = nl - _start;
                if (len > 0 && _buffer[nl - 1] == '\r')
                {
                    len--;
                }

                var line = len == 0 ? "" : Encoding.UTF8.GetString(_buffer, _start, len);
                _start = nl + 1;
                return line;
            }

            if (_end - _start > _maxLine)
            {
                throw new ResponseLimitExceededException(nameof(ResponseLimits.MaxLineBytes),
                    $"a stream line is longer than the {_maxLine}-byte bound (MaxLineBytes)");
            }

            if (_eof)
            {
                if (_end == _start)
                {
                    return null;
                }

                var last = Encoding.UTF8.GetString(_buffer, _start, _end - _start);
                _start = _end;
                return last;
            }

            scanFrom = _end;
            // Make room: move the partial line to the front, or grow (up to the line bound plus one read).
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                scanFrom -= _start;
                _end -= _start;
                _start = 0;
            }

            if (_end == _buffer.Length)
            {
                var bigger = ArrayPool<byte>.Shared.Rent(_buffer.Length * 2);
                Buffer.BlockCopy(_buffer, 0, bigger, 0, _end);
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = bigger;
            }

            var read = _stream.ReadAsync(_buffer.AsMemory(_end, Math.Min(_buffer.Length - _end, 64 * 1024)), ct);
            if (!read.IsCompleted)
            {
                _beforeWait?.Invoke();
            }

            var n = await read.ConfigureAwait(false);
            if (n == 0)
            {
                _eof = true;
            }

            _end += n;
        }
    }

    public void Dispose()
    {
        var b = _buffer;
        _buffer = [];
        if (b.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(b);
        }
    }
}
