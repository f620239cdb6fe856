using System.Diagnostics;
using System.Net;
using OllamaContinuity.Firewall;
using OllamaContinuity.Native;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Firewall;

/// <summary>
/// Three network namespaces: a server with an Ollama-like listener on 11434 (IPv4 and IPv6), a trusted client
/// (10.231.1.2, fd31:1::2) and an untrusted client (10.231.2.2, fd31:2::2) on separate links. Firewall tools run
/// only inside the server namespace, through a <see cref="ProcessCommandRunner"/> whose Prefix enters it.
/// All traffic starts inside a namespace and goes to namespace addresses only.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class FirewallLab : IAsyncDisposable
{
    public const int Port = 11434;

    /// <summary>A second listener (think SSH) that the firewall rules must leave alone.</summary>
    public const int OtherPort = 2222;
    public static readonly IPAddress TrustedServer4 = IPAddress.Parse("10.231.1.1");
    public static readonly IPAddress TrustedServer6 = IPAddress.Parse("fd31:1::1");
    public static readonly IPAddress UntrustedServer4 = IPAddress.Parse("10.231.2.1");
    public static readonly IPAddress UntrustedServer6 = IPAddress.Parse("fd31:2::1");
    public static readonly string[] TrustedRanges = ["10.231.1.0/24", "fd31:1::/64"];
    public static readonly string[] UntrustedHosts = ["10.231.2.2", "fd31:2::2"];

    private readonly FakeAiServer _listener;
    private readonly FakeAiServer _other;
    private readonly List<Process> _processes = [];

    private FirewallLab()
    {
        Server = NetNs.Create("fws");
        Trusted = NetNs.Create("fwt");
        Untrusted = NetNs.Create("fwu");
        NetNs.Link(Server, ["10.231.1.1/24", "fd31:1::1/64"], Trusted, ["10.231.1.2/24", "fd31:1::2/64"]);
        NetNs.Link(Server, ["10.231.2.1/24", "fd31:2::1/64"], Untrusted, ["10.231.2.2/24", "fd31:2::2/64"]);
        _listener = Server.Run(() => FakeAiServer.Start(FakeApi.Ollama, address: IPAddress.IPv6Any, port: Port));
        _other = Server.Run(() => FakeAiServer.Start(FakeApi.Ollama, address: IPAddress.IPv6Any, port: OtherPort));
        Scratch = Directory.CreateTempSubdirectory("oc-fw-").FullName;
        File.SetUnixFileMode(Scratch, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Runner = new ProcessCommandRunner { Prefix = ["ip", "netns", "exec", Server.Name], Timeout = TimeSpan.FromSeconds(60) };
    }

    public NetNs Server { get; }
    public NetNs Trusted { get; }
    public NetNs Untrusted { get; }

    /// <summary>A private directory for the tools' state (ufw rootdir, firewalld config, nftables include dir).</summary>
    public string Scratch { get; }

    public ProcessCommandRunner Runner { get; private set; }

    public static FirewallLab Create() => new();

    /// <summary>ufw with its whole state copied under Scratch (--rootdir/--datadir), default input policy ACCEPT.</summary>
    public FirewallEnvironment Ufw()
    {
        var root = Path.Combine(Scratch, "ufw");
        foreach (var (from, to) in new[] { ("/etc/ufw", "etc/ufw"), ("/lib/ufw", "lib/ufw"), ("/usr/share/ufw", "usr/share/ufw") })
        {
            Copy(from, Path.Combine(root, to));
        }

        Directory.CreateDirectory(Path.Combine(root, "etc/default"));
        var sysctl = Path.Combine(root, "etc/ufw/sysctl-empty.conf");
        File.WriteAllText(sysctl, "");
        var defaults = File.ReadAllLines("/etc/default/ufw")
            .Select(l => l.StartsWith("DEFAULT_INPUT_POLICY=", StringComparison.Ordinal) ? "DEFAULT_INPUT_POLICY=\"ACCEPT\""
                : l.StartsWith("IPT_SYSCTL=", StringComparison.Ordinal) ? "IPT_SYSCTL=" + sysctl // never apply sysctls, not even in the namespace
                : l);
        File.WriteAllLines(Path.Combine(root, "etc/default/ufw"), defaults);
        return new FirewallEnvironment { Runner = Runner, UfwOptions = ["--rootdir=" + root, "--datadir=" + root], UfwRoot = root };
    }

    public FirewallEnvironment Nftables() => new() { Runner = Runner, NftablesIncludeDirectory = Path.Combine(Scratch, "nftables.d") };

    public FirewallEnvironment Iptables() => new() { Runner = Runner };

    /// <summary>
    /// firewalld inside the server namespace: a holder process with a private mount namespace (unshare -m) and a
    /// tmpfs on /run, its own system dbus-daemon there, and firewalld with --system-config under Scratch.
    /// Commands then run through nsenter into that mount+network namespace.
    /// </summary>
    public async Task<FirewallEnvironment> FirewalldAsync()
    {
        var config = Path.Combine(Scratch, "firewalld");
        Copy("/etc/firewalld", config);
        var holder = Start(["ip", "netns", "exec", Server.Name, "unshare", "-m", "--propagation", "private", "sleep", "infinity"]);
        await Task.Delay(200);
        var enter = new[] { "nsenter", "-t", holder.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), "-m", "-n" };
        Check(NetNs.RunProcess([.. enter, "mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"]));
        Check(NetNs.RunProcess([.. enter, "mkdir", "-p", "/run/dbus"]));
        var bus = new Dictionary<string, string> { ["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=/run/dbus/system_bus_socket" };
        Start([.. enter, "dbus-daemon", "--system", "--nofork", "--nopidfile"]);
        await Task.Delay(300);
        Start([.. enter, "firewalld", "--nofork", "--nopid", "--system-config", config, "--log-target", "console"], bus);
        Runner = new ProcessCommandRunner { Prefix = enter, Environment = bus, Timeout = TimeSpan.FromSeconds(60) };
        for (var i = 0; i < 60; i++)
        {
            if ((await Runner.RunAsync(CommandInvocation.Of("firewall-cmd", "--state"))).Succeeded)
            {
                return new FirewallEnvironment { Runner = Runner };
            }

            await Task.Delay(500);
        }

        throw new InvalidOperationException("firewalld did not start in the namespace within 30 s");
    }

    /// <summary>Runs a command through the lab's runner (inside the server namespace) and requires exit code 0.</summary>
    public async Task Must(string file, params string[] args)
    {
        var r = await Runner.RunAsync(CommandInvocation.Of(file, args));
        Assert.True(r.Succeeded, $"{file} {string.Join(' ', args)}: {r.ExitCode} {r.StandardError}");
    }

    /// <summary>The ufw options of <see cref="Ufw"/> (rootdir/datadir under Scratch).</summary>
    public string[] UfwOptions => ["--rootdir=" + Path.Combine(Scratch, "ufw"), "--datadir=" + Path.Combine(Scratch, "ufw")];

    /// <summary>The output of read-only commands run in the server namespace, for before/after comparisons.</summary>
    public async Task<string> Dump(params string[][] commands)
    {
        var text = new System.Text.StringBuilder();
        foreach (var c in commands)
        {
            var r = await Runner.RunAsync(CommandInvocation.Of(c[0], c[1..]));
            text.Append("## ").Append(string.Join(' ', c)).Append(" -> ").Append(r.ExitCode).Append('\n').Append(r.StandardOutput);
        }

        return text.ToString();
    }

    /// <summary>An admin's own nftables table, which the module must leave alone.</summary>
    public Task AdminNftTable() => Runner.RunAsync(CommandInvocation.Of("nft", "-f", "-") with
    {
        StandardInput = $"table inet admin {{\n\tchain input {{\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport {OtherPort} accept\n\t}}\n}}\n",
    }).ContinueWith(t => Assert.True(t.Result.Succeeded, t.Result.StandardError), TaskScheduler.Default);

    /// <summary>An admin's own iptables rules in INPUT, which the module must leave alone.</summary>
    public async Task AdminIptablesRules()
    {
        await Must("iptables", "-A", "INPUT", "-p", "tcp", "--dport", OtherPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "-j", "ACCEPT");
        await Must("ip6tables", "-A", "INPUT", "-p", "tcp", "--dport", OtherPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "-j", "ACCEPT");
    }

    /// <summary>Which of the four client paths connect, as "trusted4 trusted6 untrusted4 untrusted6" flags, plus loopback.</summary>
    public (bool T4, bool T6, bool U4, bool U6, bool Lo4, bool Lo6) Probe()
    {
        var t = TimeSpan.FromSeconds(1.2);
        return (Trusted.CanConnect(TrustedServer4, Port, t), Trusted.CanConnect(TrustedServer6, Port, t),
            Untrusted.CanConnect(UntrustedServer4, Port, t), Untrusted.CanConnect(UntrustedServer6, Port, t),
            Server.CanConnect(IPAddress.Loopback, Port, t), Server.CanConnect(IPAddress.IPv6Loopback, Port, t));
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = _processes.Count - 1; i >= 0; i--)
        {
            try
            {
                _processes[i].Kill(entireProcessTree: true);
                _processes[i].WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
            }

            _processes[i].Dispose();
        }

        await _listener.DisposeAsync();
        await _other.DisposeAsync();
        Server.Dispose();
        Trusted.Dispose();
        Untrusted.Dispose();
        try
        {
            Directory.Delete(Scratch, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private Process Start(string[] args, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(args[0]) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args.Skip(1))
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _processes.Add(p);
        return p;
    }

    private static void Check((int ExitCode, string Output) r)
    {
        if (r.ExitCode != 0)
        {
            throw new InvalidOperationException(r.Output);
        }
    }

    private static void Copy(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        }

        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)), overwrite: true);
            File.SetUnixFileMode(Path.Combine(to, Path.GetRelativePath(from, file)), File.GetUnixFileMode(file));
        }
    }
}
