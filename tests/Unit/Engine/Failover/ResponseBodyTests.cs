using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Text;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Tests.Failover;

/// <summary>
/// Non-streaming bodies are read whole whatever their framing: Content-Length, chunked, or compressed (where the
/// Content-Length on the wire is not the length of the decompressed body).
/// </summary>
public sealed class ResponseBodyTests
{
    private const string Answer = "{\"model\":\"llama3.1:8b\",\"created_at\":\"2026-11-24T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"framed answer\"},\"done\":true,\"prompt_eval_count\":7,\"eval_count\":11}";

    public enum Framing
    {
        ContentLength,
        Chunked,
        GzipWithContentLength,
        GzipChunked,
    }

    [Theory]
    [InlineData(Framing.ContentLength)]
    [InlineData(Framing.Chunked)]
    [InlineData(Framing.GzipWithContentLength)]
    [InlineData(Framing.GzipChunked)]
    public async Task A_non_streaming_answer_is_read_whole_whatever_its_framing(Framing framing)
    {
        await using var server = new OneShotServer(Response(200, Answer, framing));
        using var engine = new FailoverEngine();
        var plan = new BackendPlan(null, [BackendEndpoint.Ollama(server.BaseUri, "llama3.1:8b", Harness.Fast)]) { DisableLog = true };

        var response = await engine.SendAsync(Harness.Request(), plan);

        Assert.Equal("Ollama", response.Backend);
        Assert.Equal("framed answer", response.Text);
        Assert.Equal(11, response.OutputTokens);
    }

    [Theory]
    [InlineData(Framing.ContentLength)]
    [InlineData(Framing.Chunked)]
    [InlineData(Framing.GzipWithContentLength)]
    public async Task An_error_body_is_read_whatever_its_framing(Framing framing)
    {
        await using var server = new OneShotServer(Response(503, "{\"error\":\"model is loading\"}", framing));
        using var engine = new FailoverEngine();
        var plan = new BackendPlan(null, [BackendEndpoint.Ollama(server.BaseUri, "llama3.1:8b", Harness.Fast)]) { DisableLog = true };

        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request(), plan));

        var attempt = Assert.Single(e.Attempts);
        Assert.Equal(503, attempt.StatusCode);
        Assert.Contains("model is loading", attempt.Detail);
    }

    [Theory]
    [InlineData(Framing.ContentLength)]
    [InlineData(Framing.Chunked)]
    public async Task An_oversized_answer_is_a_failed_attempt_that_fails_over(Framing framing)
    {
        var big = Answer.Replace("framed answer", new string('x', 4096));
        await using var server = new OneShotServer(Response(200, big, framing));
        await using var ollama = OllamaContinuity.TestSupport.FakeAiServer.Start(OllamaContinuity.TestSupport.FakeApi.Ollama, "ollama");
        using var engine = new FailoverEngine(new FailoverEngineOptions { MaxResponseBytes = 1024 });
        var log = Harness.TempLog();
        var plan = new BackendPlan(null, [BackendEndpoint.Ollama(server.BaseUri, "m", Harness.Fast), Harness.Ollama(ollama)]) { LogPath = log };

        var response = await engine.SendAsync(Harness.Request(), plan);

        Assert.Equal("ollama: reply to hello", response.Text);
        Assert.Equal("ResponseTooLarge", response.Attempts[0].FailureClass);
        Assert.Contains("MaxResponseBytes", response.Attempts[0].Detail);
        Assert.Single(File.ReadAllLines(log));
    }

    private static byte[] Response(int status, string json, Framing framing)
    {
        var body = Encoding.UTF8.GetBytes(json);
        var gzip = framing is Framing.GzipWithContentLength or Framing.GzipChunked;
        if (gzip)
        {
            using var ms = new MemoryStream();
            using (var z = new GZipStream(ms, CompressionLevel.Optimal))
            {
                z.Write(body);
            }

            body = ms.ToArray();
        }

        var head = new StringBuilder($"HTTP/1.1 {status} {(status == 200 ? "OK" : "Service Unavailable")}\r\nContent-Type: application/json\r\nConnection: close\r\n");
        if (gzip)
        {
            head.Append("Content-Encoding: gzip\r\n");
        }

        using var wire = new MemoryStream();
        if (framing is Framing.Chunked or Framing.GzipChunked)
        {
            head.Append("Transfer-Encoding: chunked\r\n\r\n");
            wire.Write(Encoding.ASCII.GetBytes(head.ToString()));
            // Two chunks, so that the body cannot be read in one piece by accident.
            var half = body.Length / 2;
            foreach (var part in new[] { body[..half], body[half..] })
            {
                wire.Write(Encoding.ASCII.GetBytes($"{part.Length:X}\r\n"));
                wire.Write(part);
                wire.Write("\r\n"u8);
            }

            wire.Write("0\r\n\r\n"u8);
        }
        else
        {
            head.Append($"Content-Length: {body.Length}\r\n\r\n");
            wire.Write(Encoding.ASCII.GetBytes(head.ToString()));
            wire.Write(body);
        }

        return wire.ToArray();
    }

    /// <summary>A loopback server that reads one request and writes <paramref name="response"/> byte for byte on every connection.</summary>
    private sealed class OneShotServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;

        public OneShotServer(byte[] response)
        {
            _listener.Start();
            BaseUri = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
            _loop = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    using var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    var stream = client.GetStream();
                    await ReadRequestAsync(stream, _stop.Token);
                    await stream.WriteAsync(response, _stop.Token);
                    await stream.FlushAsync(_stop.Token);
                    client.Client.Shutdown(SocketShutdown.Send);
                }
            });
        }

        public string BaseUri { get; }

        private static async Task ReadRequestAsync(NetworkStream stream, CancellationToken token)
        {
            // Headers up to the blank line, then Content-Length bytes of body.
            var head = new List<byte>();
            var one = new byte[1];
            while (!(head.Count >= 4 && head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n'))
            {
                if (await stream.ReadAsync(one, token) == 0)
                {
                    return;
                }

                head.Add(one[0]);
            }

            var text = Encoding.ASCII.GetString(head.ToArray());
            var line = text.Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
            if (line is not null && int.TryParse(line["Content-Length:".Length..].Trim(), out var length) && length > 0)
            {
                await stream.ReadExactlyAsync(new byte[length], token);
            }
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            _listener.Stop();
            try
            {
                await _loop;
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or IOException)
            {
                // stopping
            }

            _stop.Dispose();
        }
    }
}
