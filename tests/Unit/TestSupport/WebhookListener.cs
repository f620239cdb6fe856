using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace OllamaContinuity.TestSupport;

/// <summary>One POST the listener received.</summary>
public sealed record WebhookCall(string Path, string ContentType, string Body);

/// <summary>
/// A local incoming-webhook endpoint on a real socket (127.0.0.1 by default, or inside a namespace when created
/// there): records every POST and answers <see cref="Status"/>. The URL carries a secret-looking path, as Teams and
/// Slack webhooks do, so tests can prove it never leaks.
/// </summary>
public sealed class WebhookListener : IAsyncDisposable
{
    public const string SecretPath = "/hooks/T0SECRET/B0SECRET/xoxb-CANARY-5e1f0c9a";
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    private WebhookListener(TcpListener listener)
    {
        _listener = listener;
        _listener.Start();
        var ep = (IPEndPoint)_listener.LocalEndpoint;
        Uri = new Uri($"http://{ep.Address}:{ep.Port}{SecretPath}");
        _loop = Task.Run(LoopAsync);
    }

    public static WebhookListener Start(IPAddress? address = null) => new(new TcpListener(address ?? IPAddress.Loopback, 0));

    /// <summary>Wraps a listening socket created elsewhere (for example inside a network namespace).</summary>
    public static WebhookListener Start(TcpListener listener) => new(listener);

    public Uri Uri { get; }

    public int Status { get; set; } = 200;

    public ConcurrentQueue<WebhookCall> Calls { get; } = new();

    /// <summary>Waits until at least <paramref name="count"/> calls arrived or the timeout passed.</summary>
    public async Task<bool> WaitForAsync(int count, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (Calls.Count < count && DateTime.UtcNow < until)
        {
            await Task.Delay(20);
        }

        return Calls.Count >= count;
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }

            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        try
        {
            using (client)
            {
                var stream = new BufferedStream(client.GetStream(), 16 * 1024);
                while (true)
                {
                    if (await FakeAiServer.ReadRequestAsync(stream, _stop.Token) is not { } request)
                    {
                        return;
                    }

                    Calls.Enqueue(new WebhookCall(request.Path, request.Headers.GetValueOrDefault("Content-Type", ""), request.Body));
                    var reply = Encoding.ASCII.GetBytes($"HTTP/1.1 {Status} X\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok");
                    await stream.WriteAsync(reply, _stop.Token);
                    await stream.FlushAsync(_stop.Token);
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _loop; } catch (OperationCanceledException) { }
    }
}
