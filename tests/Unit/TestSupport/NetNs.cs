using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Collections.Concurrent;

namespace OllamaContinuity.TestSupport;

/// <summary>
/// A network namespace the test creates and deletes (<c>ip netns add</c>), so that a test's hosts, addresses and
/// firewalls live only inside it. Sockets can be created inside it from this process (<see cref="Run{T}"/> runs code
/// on a thread that has entered the namespace with setns; a socket stays in the namespace it was created in).
/// Addresses: only those the tests assign inside their own namespaces, and traffic to them only from inside a
/// namespace: from the host namespace such an address routes to the real network, which tests must never reach.
/// </summary>
public sealed class NetNs : IDisposable
{
    private const int CloneNewNet = 0x40000000;
    private static int s_counter;
    private readonly BlockingCollection<Action> _work = new();
    private readonly Thread _thread;
    private Exception? _enterError;

    private NetNs(string name)
    {
        Name = name;
        Run0("ip", "netns", "add", name);
        Run0("ip", "-n", name, "link", "set", "lo", "up");
        using var ready = new ManualResetEventSlim();
        _thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle($"/var/run/netns/{name}");
                if (setns((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                {
                    throw new InvalidOperationException($"setns({name}) failed: errno {Marshal.GetLastPInvokeError()}");
                }
            }
            catch (Exception e)
            {
                _enterError = e;
            }

            ready.Set();
            foreach (var action in _work.GetConsumingEnumerable())
            {
                action();
            }
        })
        { IsBackground = true, Name = "netns " + name };
        _thread.Start();
        ready.Wait();
        if (_enterError is not null)
        {
            Dispose();
            throw _enterError;
        }
    }

    public string Name { get; }

    /// <summary>A new namespace named oc-&lt;tag&gt;-&lt;pid&gt;-&lt;n&gt;. Needs root: call <see cref="Require.Root"/> first.</summary>
    public static NetNs Create(string tag) => new($"oc{tag}{Environment.ProcessId % 10000}x{Interlocked.Increment(ref s_counter)}");

    /// <summary>Joins two namespaces with a veth pair and gives each end its addresses (CIDR form, IPv4 or IPv6).</summary>
    public static void Link(NetNs a, string[] aAddresses, NetNs b, string[] bAddresses)
    {
        var n = Interlocked.Increment(ref s_counter);
        var ea = $"va{Environment.ProcessId % 10000}x{n}";
        var eb = $"vb{Environment.ProcessId % 10000}x{n}";
        Run0("ip", "link", "add", ea, "netns", a.Name, "type", "veth", "peer", "name", eb, "netns", b.Name);
        foreach (var (ns, dev, addrs) in new[] { (a, ea, aAddresses), (b, eb, bAddresses) })
        {
            foreach (var addr in addrs)
            {
                Run0(addr.Contains(':') ? ["ip", "-n", ns.Name, "-6", "addr", "add", addr, "dev", dev, "nodad"] : ["ip", "-n", ns.Name, "addr", "add", addr, "dev", dev]);
            }

            Run0("ip", "-n", ns.Name, "link", "set", dev, "up");
        }
    }

    /// <summary>Adds an address to an existing interface of this namespace (for a second source address, say).</summary>
    public void AddAddress(string device, string cidr) =>
        Run0(cidr.Contains(':') ? ["ip", "-n", Name, "-6", "addr", "add", cidr, "dev", device, "nodad"] : ["ip", "-n", Name, "addr", "add", cidr, "dev", device]);

    /// <summary>Runs <paramref name="func"/> inside the namespace (sockets it creates belong to the namespace).</summary>
    public T Run<T>(Func<T> func)
    {
        var tcs = new TaskCompletionSource<T>();
        _work.Add(() =>
        {
            try
            {
                tcs.SetResult(func());
            }
            catch (Exception e)
            {
                tcs.SetException(e);
            }
        });
        return tcs.Task.GetAwaiter().GetResult();
    }

    /// <summary>A TCP socket created inside the namespace.</summary>
    public Socket CreateSocket(AddressFamily family) => Run(() => new Socket(family, SocketType.Stream, ProtocolType.Tcp));

    /// <summary>Tries a TCP connect from inside this namespace; true if the handshake completed in time.</summary>
    public bool CanConnect(IPAddress address, int port, TimeSpan? timeout = null, IPAddress? source = null)
    {
        using var s = CreateSocket(address.AddressFamily);
        if (source is not null)
        {
            s.Bind(new IPEndPoint(source, 0));
        }

        try
        {
            using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(1.5));
            s.ConnectAsync(address, port, cts.Token).AsTask().GetAwaiter().GetResult();
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Runs a program inside the namespace (<c>ip netns exec</c>), with an argument list.</summary>
    public (int ExitCode, string Output) Exec(params string[] args) => Exec(null, args);

    public (int ExitCode, string Output) Exec(IDictionary<string, string>? env, params string[] args) =>
        RunProcess(["ip", "netns", "exec", Name, .. args], env);

    public void Dispose()
    {
        _work.CompleteAdding();
        RunProcess(["ip", "netns", "del", Name], null);
    }

    public static (int ExitCode, string Output) RunProcess(string[] args, IDictionary<string, string>? env = null, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(args[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args.Skip(1))
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout ?? TimeSpan.FromSeconds(60)))
        {
            p.Kill(true);
            return (124, "timeout: " + string.Join(' ', args));
        }

        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    private static void Run0(params string[] args)
    {
        var (code, output) = RunProcess(args);
        if (code != 0)
        {
            throw new InvalidOperationException($"{string.Join(' ', args)} failed ({code}): {output}");
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);
}

/// <summary>
/// The host's own firewall state, read before and after a test that uses firewalls inside namespaces; any
/// difference fails the test. The rules themselves are compared; iptables' notice that legacy tables exist is not
/// (the first 'iptables-legacy -S' of a boot instantiates the empty legacy filter table, ACCEPT everywhere, and
/// from then on the nft-based iptables prints "# Warning: iptables-legacy tables present").
/// </summary>
public sealed record HostFirewallSnapshot(string State)
{
    public static HostFirewallSnapshot Take()
    {
        var parts = new List<string>();
        foreach (var cmd in new[] { new[] { "nft", "list", "ruleset" }, ["iptables", "-S"], ["ip6tables", "-S"], ["iptables-legacy", "-S"] })
        {
            parts.Add(Require.Which(cmd[0]) is null ? $"{cmd[0]}: absent" : string.Join(' ', cmd) + "\n" + WithoutLegacyNotice(NetNs.RunProcess(cmd).Output));
        }

        foreach (var dir in new[] { "/etc/ufw", "/etc/firewalld", "/etc/nftables.d" })
        {
            parts.Add(dir + "\n" + (Directory.Exists(dir)
                ? string.Join("\n", Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
                    .Select(f => f + " " + Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f)))))
                : "absent"));
        }

        return new HostFirewallSnapshot(string.Join("\n---\n", parts));
    }

    private static string WithoutLegacyNotice(string output) =>
        string.Join('\n', output.Split('\n').Where(l => !l.StartsWith("# Warning: iptables-legacy tables present", StringComparison.Ordinal)));
}
