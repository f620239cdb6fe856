using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Time.Testing;
using OllamaContinuity.Exposure;
using OllamaContinuity.Hardening;
using OllamaContinuity.Native;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Exposure;

/// <summary>A fixture tree standing in for a host: /proc, /sys, /etc and /var under a temp root.</summary>
internal sealed class HostFixture : IDisposable
{
    public const string TcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    public HostFixture() => Directory.CreateDirectory(Root);

    public string Root { get; } = TestPaths.New("audit");

    public HostFixture File(string path, string content, DateTime? written = null)
    {
        var full = Path.Combine(Root, path.TrimStart('/'));
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        System.IO.File.WriteAllText(full, content);
        if (written is { } w)
        {
            System.IO.File.SetLastWriteTimeUtc(full, w);
        }

        return this;
    }

    /// <summary>A LISTEN line for /proc/net/tcp (IPv4 in kernel byte order).</summary>
    public static string Listen4(string ip, int port, int uid, int sl = 0)
    {
        var b = IPAddress.Parse(ip).GetAddressBytes();
        var hex = $"{b[3]:X2}{b[2]:X2}{b[1]:X2}{b[0]:X2}";
        return $"   {sl}: {hex}:{port:X4} 00000000:0000 0A 00000000:00000000 00:00000000 00000000 {uid,5}        0 {1000 + sl} 1 0000000000000000 100 0 0 10 0\n";
    }

    public HostFixture Tcp(params string[] lines) => File("proc/net/tcp", TcpHeader + string.Concat(lines));

    public HostFixture OllamaProcess(int pid, int uid, params string[] env) =>
        File($"proc/{pid}/cmdline", "/usr/local/bin/ollama\0serve\0")
            .File($"proc/{pid}/comm", "ollama\n")
            .File($"proc/{pid}/status", $"Name:\tollama\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
            .File($"proc/{pid}/environ", string.Concat(env.Select(e => e + "\0")));

    public HostFixture Unit(string serviceSection) =>
        File("etc/systemd/system/ollama.service", "[Unit]\nDescription=Ollama Service\n\n[Service]\nExecStart=/usr/local/bin/ollama serve\n" + serviceSection + "\n[Install]\nWantedBy=default.target\n");

    public HostFixture Passwd() => File("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nollama:x:999:999::/usr/share/ollama:/bin/false\n");

    /// <summary>Models on /dev/mapper/&lt;name&gt; (dm-1): LVM on LUKS when <paramref name="luks"/>, else LVM on a plain partition.</summary>
    public HostFixture Mount(string mountPoint, bool luks)
    {
        File("proc/self/mountinfo",
            "22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw\n" +
            $"40 22 253:1 / {mountPoint} rw,relatime shared:20 - xfs /dev/mapper/vg-models rw\n");
        File("sys/dev/block/253:1/dm/name", "vg-models\n");
        File("sys/dev/block/253:1/dm/uuid", "LVM-abcdef\n");
        File("sys/dev/block/253:1/slaves/dm-0/.keep", "");
        File("sys/class/block/dm-0/dm/name", luks ? "luks-data\n" : "linear0\n");
        File("sys/class/block/dm-0/dm/uuid", luks ? "CRYPT-LUKS2-0123456789abcdef-luks-data\n" : "LVM-linear\n");
        File("sys/class/block/dm-0/slaves/sdb1/.keep", "");
        File("sys/class/block/sdb1/partition", "1\n");
        return this;
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}

public sealed class LocalAuditTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 6, 0, 0, TimeSpan.Zero);
    private readonly HostFixture _h = new();
    private readonly RecordingCommandRunner _runner = new();

    public void Dispose() => _h.Dispose();

    private async Task<Dictionary<string, ExposureFinding>> Audit(IFirewallStatusProvider? firewall = null, int? port = null, bool? live = null)
    {
        var audit = new LocalAudit(new LocalAuditOptions
        {
            Root = _h.Root,
            Live = live,
            Port = port,
            Platform = HardeningPlatform.Linux,
            Runner = _runner,
            Firewall = firewall ?? UndeterminedFirewallStatusProvider.Instance,
            SessionEnvironment = new Dictionary<string, string> { ["HOME"] = "/root" },
            Time = new FakeTimeProvider(Now),
            ProbeTimeout = TimeSpan.FromSeconds(1),
        });
        var findings = await audit.RunAsync();
        Assert.Equal(
            [ExposureChecks.BindAddress, ExposureChecks.Firewall, ExposureChecks.Origins, ExposureChecks.WebUI, ExposureChecks.ServiceUser, ExposureChecks.Authentication, ExposureChecks.Logs, ExposureChecks.DiskEncryption],
            findings.Select(f => f.Check));
        Assert.All(findings, f => Assert.Equal(_h.Root, f.Target));
        Assert.All(findings.Where(f => f.Status is ExposureStatus.Fail or ExposureStatus.Warn), f => Assert.NotEqual("", f.Remediation));
        return findings.ToDictionary(f => f.Check);
    }

    [Fact]
    public async Task A_hardened_host_passes_every_item()
    {
        _h.Passwd()
            .Unit("User=ollama\nGroup=ollama\n")
            .OllamaProcess(812, 999, "OLLAMA_HOST=127.0.0.1:11434", "OLLAMA_ORIGINS=https://app.example.com", "OLLAMA_NO_WEBSERVER=1")
            .Tcp(HostFixture.Listen4("127.0.0.1", 11434, 999), HostFixture.Listen4("127.0.0.1", 3001, 1000, 1))
            .Mount("/usr/share/ollama", luks: true)
            .File("var/log/journal/0123abcd/system.journal", "binary", Now.UtcDateTime.AddHours(-1));

        var f = await Audit();

        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.BindAddress].Status);
        Assert.Contains("process 812", f[ExposureChecks.BindAddress].Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.NotApplicable, f[ExposureChecks.Firewall].Status);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.Origins].Status);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.WebUI].Status);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.ServiceUser].Status);
        Assert.Contains("ollama (pid 812)", f[ExposureChecks.ServiceUser].Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.Authentication].Status);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.Logs].Status);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.DiskEncryption].Status);
        Assert.Contains("luks-data", f[ExposureChecks.DiskEncryption].Detail, StringComparison.Ordinal);
        Assert.All(f.Values, x => Assert.Equal("", x.Remediation));
        Assert.Empty(_runner.Commands); // an offline root runs nothing
    }

    [Fact]
    public async Task An_exposed_host_fails_with_evidence_and_the_fix_for_each_item()
    {
        // Ollama answers on a wildcard socket: the probe goes through loopback, to a fake on 127.0.0.1.
        await using var fake = FakeAiServer.Start(FakeApi.Ollama);
        fake.Tags = ["llama3.1:8b", "secret-finetune:latest"];
        _h.Passwd()
            .Unit("Environment=\"OLLAMA_HOST=0.0.0.0\" \"OLLAMA_ORIGINS=*\"\n")
            .Tcp(HostFixture.Listen4("0.0.0.0", fake.Port, 0), HostFixture.Listen4("0.0.0.0", 3001, 0, 1))
            .File("proc/self/mountinfo", "22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw\n")
            .File("sys/dev/block/8:2/partition", "2\n");

        var f = await Audit(port: fake.Port);

        Assert.Equal(ExposureStatus.Warn, f[ExposureChecks.BindAddress].Status);
        Assert.Contains("0.0.0.0:" + fake.Port, f[ExposureChecks.BindAddress].Detail, StringComparison.Ordinal);
        Assert.Contains("ollama.service", f[ExposureChecks.BindAddress].Detail, StringComparison.Ordinal);
        Assert.Equal("Set-OllamaHardening -BindAddress 127.0.0.1:11434 -Restart", f[ExposureChecks.BindAddress].Remediation);
        Assert.Equal(ExposureStatus.Warn, f[ExposureChecks.Firewall].Status);
        Assert.Contains("could not be determined", f[ExposureChecks.Firewall].Detail, StringComparison.Ordinal);
        Assert.StartsWith("Set-OllamaFirewallRule -AllowFrom", f[ExposureChecks.Firewall].Remediation, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.Fail, f[ExposureChecks.Origins].Status);
        Assert.Equal(ExposureStatus.Fail, f[ExposureChecks.WebUI].Status);
        Assert.Contains("0.0.0.0:3001", f[ExposureChecks.WebUI].Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.Fail, f[ExposureChecks.ServiceUser].Status);
        Assert.Contains("belongs to root", f[ExposureChecks.ServiceUser].Detail, StringComparison.Ordinal);
        var auth = f[ExposureChecks.Authentication];
        Assert.Equal(ExposureStatus.Fail, auth.Status);
        Assert.Equal(("0.33.0", "llama3.1:8b, secret-finetune:latest", 2), (auth.Version, auth.Models, auth.ModelCount));
        Assert.Equal(ExposureStatus.Warn, f[ExposureChecks.Logs].Status);
        Assert.Equal(ExposureStatus.Fail, f[ExposureChecks.DiskEncryption].Status);
        Assert.Contains("/dev/sda2", f[ExposureChecks.DiskEncryption].Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true, ExposureStatus.Pass)]
    [InlineData(false, ExposureStatus.Fail)]
    public async Task Firewall_item_asks_the_firewall_provider_when_bound_beyond_loopback(bool restricted, string expected)
    {
        _h.Unit("User=ollama\nEnvironment=OLLAMA_HOST=0.0.0.0:11434\n").Tcp(HostFixture.Listen4("10.0.0.5", 11434, 999));
        var asked = 0;
        var provider = new DelegateFirewallStatusProvider((port, _) =>
        {
            asked = port;
            return Task.FromResult(new FirewallStatus(restricted, restricted ? "ollama_guard table active" : "no rule for the port") { Backend = "nftables", AllowFrom = ["10.0.0.0/24"] });
        });

        var f = await Audit(provider);

        Assert.Equal(11434, asked);
        Assert.Equal(expected, f[ExposureChecks.Firewall].Status);
        Assert.Contains("nftables", f[ExposureChecks.Firewall].Detail, StringComparison.Ordinal);
        // A specific non-loopback address in an offline root is never probed: Ollama has no authentication, so Fail.
        Assert.Equal(ExposureStatus.Fail, f[ExposureChecks.Authentication].Status);
        Assert.Contains("does not authenticate", f[ExposureChecks.Authentication].Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_firewall_reader_that_throws_makes_that_item_an_Error_and_the_audit_goes_on()
    {
        _h.Unit("User=ollama\nEnvironment=OLLAMA_HOST=0.0.0.0:11434\n").Tcp(HostFixture.Listen4("10.0.0.5", 11434, 999));
        var f = await Audit(new DelegateFirewallStatusProvider((_, _) => throw new NotSupportedException("backend exploded")));
        Assert.Equal(ExposureStatus.Error, f[ExposureChecks.Firewall].Status);
        Assert.Contains("backend exploded", f[ExposureChecks.Firewall].Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.Fail, f[ExposureChecks.Authentication].Status);
    }

    [Fact]
    public async Task The_port_80_trap_in_the_unit_is_reported()
    {
        _h.Unit("User=ollama\nEnvironment=\"OLLAMA_HOST=http://127.0.0.1\"\n").Tcp(HostFixture.Listen4("127.0.0.1", 80, 999));
        var f = await Audit();
        var bind = f[ExposureChecks.BindAddress];
        Assert.Equal((ExposureStatus.Warn, 80), (bind.Status, bind.Port));
        Assert.Contains("port 80", bind.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Drop_ins_override_the_unit_and_the_module_drop_in_is_read()
    {
        _h.Unit("User=root\nEnvironment=OLLAMA_HOST=0.0.0.0\n")
            .File("etc/systemd/system/ollama.service.d/90-ollamacontinuity.conf", "[Service]\nEnvironment=\"OLLAMA_HOST=127.0.0.1:11434\"\nEnvironment=\"OLLAMA_ORIGINS=https://a.example\"\nUser=ollama\n")
            .File("etc/systemd/system/ollama.service.d/90-ollamacontinuity.conf.20261101T000000Z.bak", "[Service]\nUser=root\n");
        var f = await Audit();
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.BindAddress].Status);
        Assert.Contains("90-ollamacontinuity.conf", f[ExposureChecks.BindAddress].Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.Origins].Status);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.ServiceUser].Status);
        Assert.Equal(ExposureStatus.Warn, f[ExposureChecks.WebUI].Status); // OLLAMA_NO_WEBSERVER unset
    }

    [Fact]
    public async Task A_root_process_fails_the_service_user_item_even_when_the_unit_says_otherwise()
    {
        _h.Passwd().Unit("User=ollama\n").OllamaProcess(4242, 0, "OLLAMA_HOST=127.0.0.1");
        var f = await Audit();
        Assert.Equal(ExposureStatus.Fail, f[ExposureChecks.ServiceUser].Status);
        Assert.Contains("pid 4242", f[ExposureChecks.ServiceUser].Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Disk_encryption_follows_the_device_stack_and_warns_when_it_cannot_tell()
    {
        _h.Unit("User=ollama\n").Mount("/usr/share/ollama", luks: false);
        var plain = await Audit();
        Assert.Equal(ExposureStatus.Fail, plain[ExposureChecks.DiskEncryption].Status);
        Assert.Contains("vg-models <- linear0 <- sdb1", plain[ExposureChecks.DiskEncryption].Detail, StringComparison.Ordinal);

        _h.File("proc/self/mountinfo", "22 1 0:31 / / rw shared:1 - overlay overlay rw\n");
        var overlay = await Audit();
        Assert.Equal(ExposureStatus.Warn, overlay[ExposureChecks.DiskEncryption].Status);
    }

    [Fact]
    public async Task Logs_pass_on_recent_journald_entries_and_warn_on_a_stale_log_file()
    {
        _h.Unit("User=ollama\n").File("var/log/ollama.log", "old", Now.UtcDateTime.AddDays(-30));
        var stale = await Audit();
        Assert.Equal(ExposureStatus.Warn, stale[ExposureChecks.Logs].Status);
        Assert.Contains("30 days", stale[ExposureChecks.Logs].Detail, StringComparison.Ordinal);

        // Live mode asks journalctl through the runner.
        _runner.Respond = c => c.FileName == "journalctl"
            ? new CommandResult(0, "2026-11-24T05:58:01+0000 host ollama[812]: [GIN] 200 | GET /api/tags\n", "")
            : new CommandResult(0, "", "");
        var live = await Audit(live: true);
        Assert.Equal(ExposureStatus.Pass, live[ExposureChecks.Logs].Status);
        Assert.Contains("journald", live[ExposureChecks.Logs].Detail, StringComparison.Ordinal);
        Assert.Equal("journalctl -u ollama.service -n 1 --no-pager -o short-iso --since -7d", Assert.Single(_runner.Commands).ToString());
    }

    [Fact]
    public async Task A_unit_without_User_runs_as_root_and_fails()
    {
        _h.Unit("Environment=OLLAMA_HOST=127.0.0.1\n");
        var f = await Audit();
        Assert.Equal(ExposureStatus.Fail, f[ExposureChecks.ServiceUser].Status);
        Assert.Contains("no User=", f[ExposureChecks.ServiceUser].Detail, StringComparison.Ordinal);
        Assert.Equal("Set-OllamaHardening -ServiceUser ollama -Restart", f[ExposureChecks.ServiceUser].Remediation);
    }

    [Fact]
    public async Task A_wildcard_configuration_not_yet_applied_is_a_warning_even_while_loopback_listens()
    {
        _h.Unit("User=ollama\nEnvironment=OLLAMA_HOST=0.0.0.0:11434\n").Tcp(HostFixture.Listen4("127.0.0.1", 11434, 999));
        var f = await Audit();
        Assert.Equal(ExposureStatus.Warn, f[ExposureChecks.BindAddress].Status);
        Assert.Contains("after the next restart", f[ExposureChecks.BindAddress].Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_EnvironmentFile_wins_over_Environment_as_in_systemd()
    {
        _h.Unit("User=ollama\nEnvironmentFile=-/etc/default/ollama\nEnvironment=OLLAMA_HOST=127.0.0.1\n")
            .File("etc/default/ollama", "# site settings\nOLLAMA_HOST=\"0.0.0.0:11434\"\nexport OLLAMA_ORIGINS=https://a.example\n");
        var f = await Audit();
        Assert.Equal(ExposureStatus.Warn, f[ExposureChecks.BindAddress].Status);
        Assert.Contains("OLLAMA_HOST='0.0.0.0:11434' from " + Path.Combine(_h.Root, "etc/default/ollama"), f[ExposureChecks.BindAddress].Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.Origins].Status);
    }

    [Fact]
    public async Task Nothing_installed_is_not_a_failure()
    {
        var f = await Audit();
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.BindAddress].Status);
        Assert.Equal(ExposureStatus.NotApplicable, f[ExposureChecks.ServiceUser].Status);
        Assert.DoesNotContain(f.Values, x => x.Status == ExposureStatus.Fail);
    }

    [Fact]
    public async Task Windows_audit_falls_back_to_netstat_and_reads_sc_and_manage_bde_through_the_runner()
    {
        _runner.Respond = c => (c.FileName, string.Join(' ', c.Arguments)) switch
        {
            ("netstat.exe", "-an -p TCP") => new CommandResult(0, "\r\nActive Connections\r\n\r\n  Proto  Local Address          Foreign Address        State\r\n  TCP    0.0.0.0:11434          0.0.0.0:0              LISTENING\r\n  TCP    127.0.0.1:3001         0.0.0.0:0              LISTENING\r\n", ""),
            ("netstat.exe", _) => new CommandResult(0, "  TCP    [::]:11434             [::]:0                 LISTENING\r\n", ""),
            ("sc.exe", _) => new CommandResult(0, "SERVICE_NAME: Ollama\r\n        SERVICE_START_NAME : LocalSystem\r\n", ""),
            ("manage-bde.exe", _) => new CommandResult(0, "Volume C: [OS]\r\n    Protection Status:    Protection On\r\n", ""),
            _ => new CommandResult(1, "", "unexpected"),
        };
        var audit = WindowsAudit(("OLLAMA_HOST", "0.0.0.0"), ("OLLAMA_MODELS", @"d:\models"));
        var f = (await audit.RunAsync()).ToDictionary(x => x.Check);
        Assert.Equal(ExposureStatus.Warn, f[ExposureChecks.BindAddress].Status);
        Assert.Contains("machine environment", f[ExposureChecks.BindAddress].Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.Warn, f[ExposureChecks.WebUI].Status); // 3001 on loopback only, variable unset
        Assert.Equal(ExposureStatus.Fail, f[ExposureChecks.ServiceUser].Status);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.DiskEncryption].Status);
        Assert.Contains(_runner.Commands, c => c.ToString() == "manage-bde.exe -status D:");
        Assert.Equal("Get-NetTCPConnection -State Listen -LocalPort 11434", _runner.Commands[0].ToString()); // answered "unexpected" (exit 1): netstat.exe next
        Assert.Contains("listening on 0.0.0.0:11434, [::]:11434 (sockets from netstat.exe; Get-NetTCPConnection failed or found no listener (exit code 1))", f[ExposureChecks.BindAddress].Detail, StringComparison.Ordinal);
    }

    private LocalAudit WindowsAudit(params (string Name, string Value)[] machineVariables)
    {
        var machine = new InMemoryMachineEnvironment();
        foreach (var (name, value) in machineVariables)
        {
            machine.Set(name, value);
        }

        return new LocalAudit(new LocalAuditOptions
        {
            Platform = HardeningPlatform.Windows,
            Root = "/",
            Runner = _runner,
            Machine = machine,
            SessionEnvironment = new Dictionary<string, string>(),
            ProbeTimeout = TimeSpan.FromMilliseconds(300),
            SocketFactory = _ => throw new SocketException((int)SocketError.ConnectionRefused), // no real probe from a plan test
        });
    }

    private static string Tcp(string address, object port, object state, object pid) =>
        System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object> { ["LocalAddress"] = address, ["LocalPort"] = port, ["RemoteAddress"] = "0.0.0.0", ["State"] = state, ["OwningProcess"] = pid }) + "\n";

    [Fact]
    public async Task Windows_audit_asks_Get_NetTCPConnection_first_and_no_netstat_when_it_answers()
    {
        _runner.Respond = c => c.FileName switch
        {
            "Get-NetTCPConnection" when c.Arguments.Contains("11434") => new CommandResult(0, Tcp("0.0.0.0", "11434", "Listen", "4321") + Tcp("::", "11434", "Listen", "4321"), ""),
            "Get-NetTCPConnection" => new CommandResult(0, Tcp("127.0.0.1", "3001", "Listen", "77"), ""),
            _ => new CommandResult(1, "", "unexpected"),
        };
        var f = (await WindowsAudit().RunAsync()).ToDictionary(x => x.Check);
        var asked = _runner.Commands.Select(c => c.ToString()).ToList();
        Assert.Equal("Get-NetTCPConnection -State Listen -LocalPort 11434", asked[0]);
        Assert.Contains("Get-NetTCPConnection -State Listen -LocalPort 3001", asked);
        Assert.DoesNotContain(asked, c => c.StartsWith("netstat", StringComparison.Ordinal));
        var bind = f[ExposureChecks.BindAddress];
        Assert.Equal(ExposureStatus.Warn, bind.Status);
        Assert.Contains("listening on 0.0.0.0:11434, [::]:11434 (sockets from Get-NetTCPConnection; owning process 4321)", bind.Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.Warn, f[ExposureChecks.WebUI].Status); // 3001 on loopback only, variable unset
    }

    [Theory]
    [InlineData("0.0.0.0", "2", ExposureStatus.Warn)]
    [InlineData("::", "Listen", ExposureStatus.Warn)]
    [InlineData("192.168.1.20", 2, ExposureStatus.Warn)]
    [InlineData("127.0.0.1", "Listen", ExposureStatus.Pass)]
    [InlineData("::1", 2, ExposureStatus.Pass)]
    [InlineData("::1", "listen", ExposureStatus.Pass)]
    public async Task Windows_bind_finding_reads_Get_NetTCPConnection_objects(string address, object state, string expected)
    {
        _runner.Respond = c => c.FileName == "Get-NetTCPConnection" && c.Arguments.Contains("11434")
            ? new CommandResult(0, Tcp(address, 11434, state, 4321), "")
            : new CommandResult(1, "", "");
        var bind = (await WindowsAudit().RunAsync()).Single(x => x.Check == ExposureChecks.BindAddress);
        Assert.Equal(expected, bind.Status);
        var shown = IPAddress.Parse(address).AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]:11434" : $"{address}:11434";
        Assert.Contains($"listening on {shown} (sockets from Get-NetTCPConnection; owning process 4321)", bind.Detail, StringComparison.Ordinal);
        Assert.Contains(expected == ExposureStatus.Pass ? "Loopback only" : "Reachable beyond loopback", bind.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Get_NetTCPConnection_lines_that_are_not_listeners_on_the_port_are_skipped()
    {
        var text = Tcp("0.0.0.0", "11435", "Listen", "1") + Tcp("10.0.0.5", "11434", "Established", "1") + Tcp("10.0.0.6", "11434", 5, "1")
            + Tcp("not-an-address", "11434", "Listen", "1") + "WARNING: not json\n{broken\n" + Tcp("fe80::1%12", "11434", "Listen", "9");
        var s = Assert.Single(LocalAudit.ParseNetTcpConnection(text, 11434));
        Assert.Equal(IPAddress.Parse("fe80::1"), s.Address);
        Assert.Equal(9, s.Pid);
    }

    [Fact]
    public void Get_NetTCPConnection_line_as_the_session_runner_writes_it_parses()
    {
        // The session runner writes every property: primitives and enums as strings, lists as string arrays, other objects as null.
        const string line = "{\"State\":\"Listen\",\"AppliedSetting\":\"Internet\",\"OwningProcess\":\"5120\",\"CreationTime\":null,\"OffloadState\":\"InHost\","
            + "\"LocalAddress\":\"::\",\"LocalPort\":\"11434\",\"RemoteAddress\":\"::\",\"RemotePort\":\"0\",\"CimClass\":null,\"CimInstanceProperties\":[\"AggregationBehavior\",\"LocalAddress = \\\"::\\\"\"]}";
        var s = Assert.Single(LocalAudit.ParseNetTcpConnection(line + "\n", 11434));
        Assert.Equal(IPAddress.IPv6Any, s.Address);
        Assert.Equal(5120, s.Pid);
        Assert.False(s.IsLoopback);
    }

    [Theory]
    [InlineData(1, "")] // the cmdlet is missing or failed (also its "no objects found" error when nothing listens)
    [InlineData(0, "")] // it answered, but nothing usable
    [InlineData(0, "{\"State\":\"Listen\"}\n")]
    public async Task Windows_falls_back_to_netstat_when_Get_NetTCPConnection_gives_nothing(int exitCode, string output)
    {
        _runner.Respond = c => (c.FileName, string.Join(' ', c.Arguments)) switch
        {
            ("Get-NetTCPConnection", _) => new CommandResult(exitCode, output, exitCode == 0 ? "" : "The term 'Get-NetTCPConnection' is not recognized"),
            ("netstat.exe", "-an -p TCP") => new CommandResult(0, "  TCP    127.0.0.1:11434        0.0.0.0:0              LISTENING\r\n", ""),
            ("netstat.exe", "-an -p TCPv6") => new CommandResult(0, "  TCP    [::1]:11434            [::]:0                 LISTENING\r\n", ""),
            _ => new CommandResult(1, "", ""),
        };
        var bind = (await WindowsAudit().RunAsync()).Single(x => x.Check == ExposureChecks.BindAddress);
        Assert.Equal(
            ["Get-NetTCPConnection -State Listen -LocalPort 11434", "netstat.exe -an -p TCP", "netstat.exe -an -p TCPv6"],
            _runner.Commands.Select(c => c.ToString()).Take(3));
        Assert.Equal(ExposureStatus.Pass, bind.Status);
        var why = exitCode == 0 ? "Get-NetTCPConnection listed no listener" : $"Get-NetTCPConnection failed or found no listener (exit code {exitCode})";
        Assert.Contains($"listening on 127.0.0.1:11434, [::1]:11434 (sockets from netstat.exe; {why})", bind.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("tcp4       0      0  127.0.0.1.11434        *.*                    LISTEN     ", "127.0.0.1")]
    [InlineData("tcp46      0      0  *.11434                *.*                    LISTEN     ", "::")]
    [InlineData("tcp4       0      0  *.11434                *.*                    LISTEN     ", "0.0.0.0")]
    [InlineData("tcp6       0      0  ::1.11434              *.*                    LISTEN     ", "::1")]
    [InlineData("  TCP    0.0.0.0:11434          0.0.0.0:0              LISTENING", "0.0.0.0")]
    [InlineData("  TCP    [::1]:11434            [::]:0                 LISTENING", "::1")]
    public void Netstat_listeners_parse_on_macOS_and_Windows(string line, string address)
    {
        var s = Assert.Single(LocalAudit.ParseNetstat("Proto Recv-Q Send-Q  Local Address  Foreign Address  (state)\n" + line + "\n" + line.Replace("11434", "11435", StringComparison.Ordinal), 11434));
        Assert.Equal(IPAddress.Parse(address), s.Address);
    }

    [Fact]
    public void Netstat_exe_output_with_CRLF_line_ends_parses()
    {
        var text = "\r\nActive Connections\r\n\r\n  Proto  Local Address          Foreign Address        State\r\n  TCP    0.0.0.0:11434          0.0.0.0:0              LISTENING\r\n  TCP    [::]:11434             [::]:0                 LISTENING\r\n";
        Assert.Equal([IPAddress.Any, IPAddress.IPv6Any], LocalAudit.ParseNetstat(text, 11434).Select(s => s.Address));
    }

    [Fact]
    public async Task MacOS_audit_asks_launchctl_netstat_ps_and_fdesetup_through_the_runner()
    {
        _runner.Respond = c => (c.FileName, string.Join(' ', c.Arguments)) switch
        {
            ("launchctl", "getenv OLLAMA_HOST") => new CommandResult(0, "127.0.0.1:11434\n", ""),
            ("launchctl", "getenv OLLAMA_ORIGINS") => new CommandResult(0, "https://app.example.com\n", ""),
            ("launchctl", _) => new CommandResult(0, "\n", ""),
            ("netstat", _) => new CommandResult(0, "tcp4       0      0  127.0.0.1.11434        *.*                    LISTEN\n", ""),
            ("ps", _) => new CommandResult(0, "alice /Applications/Ollama.app/Contents/Resources/ollama\nroot /sbin/launchd\n", ""),
            ("fdesetup", _) => new CommandResult(0, "FileVault is On.\n", ""),
            _ => new CommandResult(1, "", ""),
        };
        var audit = new LocalAudit(new LocalAuditOptions
        {
            Platform = HardeningPlatform.MacOS,
            Root = "/",
            Runner = _runner,
            SessionEnvironment = new Dictionary<string, string> { ["HOME"] = "/Users/alice" },
            Time = new FakeTimeProvider(Now),
        });
        var f = (await audit.RunAsync()).ToDictionary(x => x.Check);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.BindAddress].Status);
        Assert.Contains("launchctl getenv", f[ExposureChecks.BindAddress].Detail, StringComparison.Ordinal);
        Assert.Contains("listening on 127.0.0.1:11434", f[ExposureChecks.BindAddress].Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.Origins].Status);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.ServiceUser].Status);
        Assert.Contains("alice", f[ExposureChecks.ServiceUser].Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.DiskEncryption].Status);
        Assert.Equal(ExposureStatus.Pass, f[ExposureChecks.Authentication].Status);
    }
}
