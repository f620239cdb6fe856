using System.Net;
using System.Net.Sockets;
using OllamaContinuity.Exposure;

namespace OllamaContinuity.Tests.Exposure;

public sealed class ProcFsAndTargetsTests
{
    [Theory]
    [InlineData("   0: 0100007F:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 23456 1 0 100 0 0 10 0", "127.0.0.1", 11434, 999)]
    [InlineData("   1: 00000000:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 23457 1 0 100 0 0 10 0", "0.0.0.0", 11434, 0)]
    [InlineData("   2: 0500000A:0BB9 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 23458 1 0 100 0 0 10 0", "10.0.0.5", 3001, 1000)]
    [InlineData("   0: 00000000000000000000000001000000:2CAA 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1 1 0 100 0 0 10 0", "::1", 11434, 999)]
    [InlineData("   0: 00000000000000000000000000000000:2CAA 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1 1 0 100 0 0 10 0", "::", 11434, 999)]
    [InlineData("   0: 000080FE00000000FF0000020100A8C0:2CAA 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1 1 0 100 0 0 10 0", "fe80::200:ff:c0a8:1", 11434, 999)]
    public void Proc_net_tcp_lines_decode_in_kernel_byte_order(string line, string address, int port, int uid)
    {
        var s = ProcFs.ParseLine(line);
        Assert.NotNull(s);
        Assert.Equal((IPAddress.Parse(address), port, uid), (s.Address, s.Port, s.Uid));
    }

    [Fact]
    public void Established_connections_are_not_listeners() =>
        Assert.Null(ProcFs.ParseLine("   3: 0100007F:2CAA 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000   999        0 2 1 0 20 4 30 10 -1"));

    [SkippableFact]
    public void Real_proc_net_tcp_shows_a_loopback_listener_of_this_process()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "reads /proc");
        var v4 = new TcpListener(IPAddress.Loopback, 0);
        var v6 = new TcpListener(IPAddress.IPv6Loopback, 0);
        v4.Start();
        try
        {
            var port = ((IPEndPoint)v4.LocalEndpoint).Port;
            Assert.Contains(ProcFs.Listening("/proc", port), s => s.Address.Equals(IPAddress.Loopback) && s.IsLoopback && !s.IsWildcard);
            try
            {
                v6.Start();
                var port6 = ((IPEndPoint)v6.LocalEndpoint).Port;
                Assert.Contains(ProcFs.Listening("/proc", port6), s => s.Address.Equals(IPAddress.IPv6Loopback) && s.IsLoopback);
            }
            catch (SocketException)
            {
                // no IPv6 on this machine
            }
        }
        finally
        {
            v4.Stop();
            v6.Stop();
        }
    }

    [Fact]
    public async Task A_24_expands_to_its_254_host_addresses()
    {
        var list = await ScanTargets.ExpandAsync(["192.0.2.0/24"], force: false, TimeSpan.FromSeconds(1));
        Assert.Equal(254, list.Targets.Count);
        Assert.Equal(IPAddress.Parse("192.0.2.1"), list.Targets[0].Address);
        Assert.Equal(IPAddress.Parse("192.0.2.254"), list.Targets[^1].Address);
        Assert.All(list.Targets, t => Assert.Equal("192.0.2.0/24", t.Given));
    }

    [Fact]
    public async Task IPv6_ranges_single_addresses_and_duplicates()
    {
        var list = await ScanTargets.ExpandAsync(["2001:db8::/126", "2001:db8::1", "192.0.2.7", "192.0.2.6/31"], force: false, TimeSpan.FromSeconds(1));
        Assert.Equal(["2001:db8::", "2001:db8::1", "2001:db8::2", "2001:db8::3", "192.0.2.7", "192.0.2.6"], list.Targets.Select(t => t.Address.ToString()));
    }

    [Fact]
    public async Task Host_names_resolve_through_the_resolver_and_failures_are_reported_not_thrown()
    {
        var list = await ScanTargets.ExpandAsync(["ollama-a", "missing"], false, TimeSpan.FromSeconds(1),
            (name, _) => name == "ollama-a" ? Task.FromResult(new[] { IPAddress.Parse("192.0.2.10") }) : throw new SocketException((int)SocketError.HostNotFound));
        Assert.Equal(("192.0.2.10", "ollama-a"), (list.Targets.Single().Address.ToString(), list.Targets.Single().Given));
        Assert.Equal("missing", Assert.Single(list.Unresolved).Given);
    }

    [Theory]
    [InlineData("0.0.0.0/0", "TargetTooLarge")]
    [InlineData("::/0", "TargetTooLarge")]
    [InlineData("10.0.0.0/8", "TargetTooLarge")]
    [InlineData("fd00::/64", "TargetTooLarge")]
    [InlineData("10.0.0.0/19", "TargetTooLarge")]          // 8192 > 4096 without -Force
    [InlineData("10.0.0.5/24", "InvalidTarget")]           // not the network address
    [InlineData("10.0.0.0/33", "InvalidTarget")]
    [InlineData("$(id)", "InvalidTarget")]
    [InlineData("host; rm -rf /", "InvalidTarget")]
    [InlineData("", "InvalidTarget")]
    public void Unsafe_or_malformed_targets_are_refused_before_anything_runs(string target, string id) =>
        Assert.Equal(id, Assert.Throws<ScanTargetException>(() => ScanTargets.Validate([target], force: false)).ErrorId);

    [Fact]
    public void Force_allows_up_to_a_16_and_never_more()
    {
        Assert.Equal(8192, ScanTargets.Validate(["10.0.0.0/19"], force: true));
        Assert.Equal(65536, ScanTargets.Validate(["10.0.0.0/16"], force: true));
        Assert.Equal("TargetTooLarge", Assert.Throws<ScanTargetException>(() => ScanTargets.Validate(["10.0.0.0/15"], force: true)).ErrorId);
        Assert.Equal("TargetTooLarge", Assert.Throws<ScanTargetException>(() => ScanTargets.Validate(["0.0.0.0/0"], force: true)).ErrorId);
    }
}
