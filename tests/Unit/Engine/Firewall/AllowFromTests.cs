using OllamaContinuity.Firewall;
using OllamaContinuity.Native;

namespace OllamaContinuity.Tests.Firewall;

public sealed class AllowFromTests
{
    [Theory]
    [InlineData("10.0.0.0/8; rm -rf /", "InvalidAllowFrom")]
    [InlineData("$(id)", "InvalidAllowFrom")]
    [InlineData("`id`", "InvalidAllowFrom")]
    [InlineData("10.0.0.0/8 && reboot", "InvalidAllowFrom")]
    [InlineData("10.0.0.0/8\n-j ACCEPT", "InvalidAllowFrom")]
    [InlineData("10.0.0.0/8|tee", "InvalidAllowFrom")]
    [InlineData("10.0.0.0/33", "InvalidAllowFrom")]
    [InlineData("fd00::/129", "InvalidAllowFrom")]
    [InlineData("10.0.0.0/", "InvalidAllowFrom")]
    [InlineData("10.0.0.0/8/8", "InvalidAllowFrom")]
    [InlineData("::/0", "AllowFromEverywhere")]
    [InlineData("0.0.0.0/0", "AllowFromEverywhere")]
    [InlineData("", "EmptyAllowFrom")]
    [InlineData("   ", "EmptyAllowFrom")]
    [InlineData("ollama.example.com", "InvalidAllowFrom")]
    [InlineData("localhost", "InvalidAllowFrom")]
    [InlineData("1.2.3", "InvalidAllowFrom")]
    [InlineData("fe80::1%eth0", "InvalidAllowFrom")]
    [InlineData("192.168.1.10/24", "AllowFromHostBits")]
    [InlineData("any", "InvalidAllowFrom")]
    public void Parse_rejects_anything_but_an_address_or_CIDR(string value, string errorId)
    {
        var e = Assert.Throws<FirewallInputException>(() => AllowFrom.Parse([value]));
        Assert.Equal(errorId, e.ErrorId);
        Assert.NotEmpty(e.Message);
    }

    [Fact]
    public void Host_bits_name_the_network_that_was_probably_meant() =>
        Assert.Contains("192.168.1.0/24", Assert.Throws<FirewallInputException>(() => AllowFrom.Parse(["192.168.1.10/24"])).Message);

    [Fact]
    public void Parse_accepts_addresses_and_CIDRs_sorted_IPv4_first_without_duplicates()
    {
        var parsed = AllowFrom.Parse(["fd00::/64", "192.168.1.0/24", "10.8.0.0/24", " 10.0.0.1 ", "10.8.0.0/24", "2001:db8::1"]);
        Assert.Equal(["10.0.0.1", "10.8.0.0/24", "192.168.1.0/24", "2001:db8::1", "fd00::/64"], parsed.Select(n => n.ToShort()));
    }

    [Fact]
    public void Everywhere_needs_force() =>
        Assert.Equal(["0.0.0.0/0", "::/0"], AllowFrom.Parse(["::/0", "0.0.0.0/0"], force: true).Select(n => n.ToShort()));

    [Fact]
    public void An_empty_list_is_refused() =>
        Assert.Equal("EmptyAllowFrom", Assert.Throws<FirewallInputException>(() => AllowFrom.Parse([])).ErrorId);

    [Theory]
    [InlineData("10.0.0.0/255.0.0.0", "10.0.0.0/8")]
    [InlineData("192.168.1.0/255.255.255.0", "192.168.1.0/24")]
    [InlineData("10.1.2.3", "10.1.2.3")]
    [InlineData("fd00::/64", "fd00::/64")]
    [InlineData("junk", null)]
    public void FromTool_reads_what_tools_print_including_dotted_masks(string text, string? expected) =>
        Assert.Equal(expected, AllowFrom.FromTool(text)?.ToShort());

    [Theory]
    [InlineData("10.0.0.0/8; rm -rf /")]
    [InlineData("$(id)")]
    [InlineData("10.0.0.0/33")]
    [InlineData("::/0")]
    public async Task Injection_attempts_are_rejected_before_any_process_starts(string value)
    {
        var runner = new RecordingCommandRunner();
        var manager = new FirewallManager(new FirewallEnvironment { Runner = runner, Platform = FirewallPlatform.Linux });
        await Assert.ThrowsAsync<FirewallInputException>(async () =>
        {
            // The order the cmdlet follows: parse every value first, only then detect and plan.
            var request = new FirewallRequest(11434, AllowFrom.Parse(["192.168.1.0/24", value]));
            await manager.SetAsync(await manager.ResolveAsync(FirewallBackendKind.Auto), request);
        });
        Assert.Empty(runner.Commands);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(65536)]
    public async Task A_port_out_of_range_is_rejected_before_any_process_starts(int port)
    {
        var runner = new RecordingCommandRunner();
        var manager = new FirewallManager(new FirewallEnvironment { Runner = runner });
        var e = await Assert.ThrowsAsync<FirewallInputException>(() => manager.SetAsync(manager.Create(FirewallBackendKind.Nftables), new FirewallRequest(port, AllowFrom.Parse(["10.0.0.0/8"]))));
        Assert.Equal("InvalidPort", e.ErrorId);
        Assert.Empty(runner.Commands);
    }
}
