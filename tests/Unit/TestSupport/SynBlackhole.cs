using System.Net;
using System.Net.Sockets;

namespace OllamaContinuity.TestSupport;

/// <summary>
/// A loopback port whose TCP handshake never completes: a listener with a backlog of one that never accepts,
/// its queue filled first. New SYNs are dropped by the kernel, so a client's connect hangs as it does against a
/// blackholed cloud endpoint, without touching any firewall.
/// </summary>
public sealed class SynBlackhole : IDisposable
{
    private readonly Socket _listener;
    private readonly List<Socket> _fillers = [];

    public SynBlackhole()
    {
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(0);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        for (var i = 0; i < 16; i++)
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            _fillers.Add(s);
            var connect = s.ConnectAsync(IPAddress.Loopback, Port);
            if (!connect.Wait(TimeSpan.FromMilliseconds(300)))
            {
                IsBlackholed = true;
                return;
            }
        }
    }

    public int Port { get; }

    /// <summary>True when the kernel now drops new connects (checked while filling the queue).</summary>
    public bool IsBlackholed { get; }

    public Uri Uri(string path = "/v1/chat/completions") => new($"http://127.0.0.1:{Port}{path}");

    public void Dispose()
    {
        foreach (var s in _fillers)
        {
            s.Dispose();
        }

        _listener.Dispose();
    }
}
