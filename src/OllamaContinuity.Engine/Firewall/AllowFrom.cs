using System.Globalization;
using System.Net;
using System.Net.Sockets;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Firewall;

/// <summary>
/// Parses and checks -AllowFrom values before anything runs: IPv4/IPv6 addresses and CIDRs only (via
/// <see cref="IPNetwork"/>). Host names, shell metacharacters, empty values, prefixes out of range, host bits after
/// the prefix, IPv4 octets with a leading zero (read as octal by some tools), more than <see cref="MaxEntries"/>
/// entries, and "everywhere" (0.0.0.0/0, ::/0, or networks that together cover a whole family, such as
/// 0.0.0.0/1 plus 128.0.0.0/1) without force are rejected.
/// </summary>
public static class AllowFrom
{
    /// <summary>The port the module protects by default. The default value is 11434 (Ollama).</summary>
    public const int DefaultPort = 11434;

    /// <summary>
    /// The most -AllowFrom entries accepted in one rule set. The default value is 10,000. Above it the values are
    /// refused before any tool runs; some backends have a lower cap (<see cref="MaxEntriesFor"/>).
    /// </summary>
    public const int MaxEntries = 10_000;

    /// <summary>
    /// The most entries ufw takes: ufw has no batch interface (one process per rule, about half a second each), so
    /// the module refuses more than 100 sources for ufw. Use nftables, iptables or firewalld for larger sets.
    /// </summary>
    public const int MaxUfwEntries = 100;

    /// <summary>
    /// The most entries one Windows Defender Firewall rule takes in -RemoteAddress (the module keeps them in one
    /// rule). The default value is 1,000.
    /// </summary>
    public const int MaxWindowsEntries = 1_000;

    /// <summary>The cap of a backend: <see cref="MaxUfwEntries"/> for ufw, <see cref="MaxWindowsEntries"/> for Windows, else <see cref="MaxEntries"/>.</summary>
    public static int MaxEntriesFor(FirewallBackendKind kind) => kind switch
    {
        FirewallBackendKind.Ufw => MaxUfwEntries,
        FirewallBackendKind.WindowsFirewall => MaxWindowsEntries,
        _ => MaxEntries,
    };

    /// <summary>Refuses more sources than the backend takes, before any changing command runs.</summary>
    public static void CheckCount(FirewallBackendKind kind, int count)
    {
        var max = MaxEntriesFor(kind);
        if (count > max)
        {
            throw new FirewallInputException("AllowFromTooMany",
                $"-AllowFrom has {count.ToString(CultureInfo.InvariantCulture)} entries; {(kind == FirewallBackendKind.Auto ? "the module takes" : "the " + kind + " backend takes")} at most {max.ToString(CultureInfo.InvariantCulture)}" +
                (kind == FirewallBackendKind.Ufw ? " (ufw runs one process per rule)" : "") +
                ". Merge addresses into wider CIDRs" + (max < MaxEntries ? ", or use -Backend Nftables, Iptables or Firewalld, which apply large sets in a few commands." : "."),
                count.ToString(CultureInfo.InvariantCulture));
        }
    }

    public static IReadOnlyList<IPNetwork> Parse(IEnumerable<string?> values, bool force = false)
    {
        var result = new HashSet<IPNetwork>();
        foreach (var raw in values)
        {
            result.Add(ParseOne(raw, force));
        }

        if (result.Count == 0)
        {
            throw new FirewallInputException("EmptyAllowFrom", "-AllowFrom needs at least one IPv4/IPv6 address or CIDR (for example 192.168.1.0/24 or fd00::/64).", null);
        }

        CheckCount(FirewallBackendKind.Auto, result.Count);

        if (!force)
        {
            foreach (var v4 in new[] { true, false })
            {
                var family = result.Where(n => n.IsV4() == v4).ToArray();
                if (CoversEverything(family, v4))
                {
                    throw new FirewallInputException("AllowFromEverywhere",
                        $"Together, {string.Join(", ", Sort(family).Take(8).Select(n => n.ToCidr()))}{(family.Length > 8 ? ", ..." : "")} cover every {(v4 ? "IPv4" : "IPv6")} address, which is no restriction at all. Pass -Force if that is really what you want.",
                        string.Join(",", family.Take(8).Select(n => n.ToCidr())));
                }
            }
        }

        return Sort(result);
    }

    /// <summary>True when the union of <paramref name="networks"/> (all of one family) is the whole address space of that family.</summary>
    public static bool CoversEverything(IEnumerable<IPNetwork> networks, bool v4)
    {
        var bits = v4 ? 32 : 128;
        var ranges = networks.Select(n =>
        {
            var start = ToUInt128(n.BaseAddress.GetAddressBytes());
            var hostBits = bits - n.PrefixLength;
            var span = hostBits == 128 ? UInt128.MaxValue : (UInt128.One << hostBits) - 1;
            return (Start: start, End: start | span);
        }).OrderBy(r => r.Start).ToArray();
        var max = v4 ? (UInt128)uint.MaxValue : UInt128.MaxValue;
        UInt128 next = 0; // the first address not yet covered
        foreach (var (start, end) in ranges)
        {
            if (start > next)
            {
                return false;
            }

            if (end >= max)
            {
                return true;
            }

            if (end + 1 > next)
            {
                next = end + 1;
            }
        }

        return false;
    }

    private static UInt128 ToUInt128(byte[] bytes)
    {
        UInt128 v = 0;
        foreach (var b in bytes)
        {
            v = (v << 8) | b;
        }

        return v;
    }

    public static IPNetwork ParseOne(string? raw, bool force = false)
    {
        var value = raw?.Trim() ?? "";
        if (value.Length == 0)
        {
            throw new FirewallInputException("EmptyAllowFrom", "An -AllowFrom value is empty. Give an IPv4/IPv6 address or CIDR such as 192.168.1.0/24 or fd00::/64.", raw);
        }

        // Only the characters an address or CIDR can have: anything else (a host name, ';', '$', '(', spaces,
        // quotes, a zone id) is refused before it could reach any tool.
        if (!value.All(c => char.IsAsciiHexDigit(c) || c is '.' or ':' or '/'))
        {
            throw new FirewallInputException("InvalidAllowFrom",
                $"'{value}' is not an IPv4/IPv6 address or CIDR. Host names and any other characters are refused; give addresses such as 192.168.1.0/24 or fd00::/64.", raw);
        }

        IPNetwork network;
        var slash = value.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
        {
            if (!IpText.TryParseAddress(value, out var address, out var problem))
            {
                throw new FirewallInputException("InvalidAllowFrom", $"'{value}' is not an IPv4/IPv6 address or CIDR: {problem}.", raw);
            }

            network = new IPNetwork(address, address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
        }
        else
        {
            if (!IpText.TryParseNetwork(value, out var address, out var prefix, out var problem))
            {
                throw new FirewallInputException("InvalidAllowFrom", $"'{value}' is not an IPv4/IPv6 address or CIDR: {problem}.", raw);
            }

            var canonical = new IPNetwork(Mask(address, prefix), prefix);
            if (!canonical.BaseAddress.Equals(address))
            {
                throw new FirewallInputException("AllowFromHostBits", $"'{value}' has host bits set after the /{prefix} prefix. Did you mean {canonical}?", raw);
            }

            network = canonical;
        }

        if (network.PrefixLength == 0 && !force)
        {
            throw new FirewallInputException("AllowFromEverywhere",
                $"'{value}' allows every address, which is no restriction at all. Pass -Force if that is really what you want.", raw);
        }

        return network;
    }

    public static void ValidatePort(int port)
    {
        if (port is < 1 or > 65535)
        {
            throw new FirewallInputException("InvalidPort", $"The port {port} is not between 1 and 65535.", port.ToString(CultureInfo.InvariantCulture));
        }
    }

    /// <summary>IPv4 first, then IPv6; each by address bytes, then prefix.</summary>
    public static IReadOnlyList<IPNetwork> Sort(IEnumerable<IPNetwork> networks) =>
        networks.Distinct()
            .OrderBy(n => n.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? 0 : 1)
            .ThenBy(n => Convert.ToHexString(n.BaseAddress.GetAddressBytes()), StringComparer.Ordinal)
            .ThenBy(n => n.PrefixLength)
            .ToArray();

    public static bool SameSet(IEnumerable<IPNetwork> a, IEnumerable<IPNetwork> b) => Sort(a).SequenceEqual(Sort(b));

    public static bool IsV4(this IPNetwork n) => n.BaseAddress.AddressFamily == AddressFamily.InterNetwork;

    /// <summary>Always with the prefix: 10.0.0.1/32, fd00::/64.</summary>
    public static string ToCidr(this IPNetwork n) => n.BaseAddress + "/" + n.PrefixLength.ToString(CultureInfo.InvariantCulture);

    /// <summary>A host as its address, a network as a CIDR: 10.0.0.1, 10.0.0.0/8.</summary>
    public static string ToShort(this IPNetwork n) => n.PrefixLength == (n.IsV4() ? 32 : 128) ? n.BaseAddress.ToString() : n.ToCidr();

    /// <summary>Parses what a tool printed: an address, a CIDR, or an IPv4 subnet with a dotted mask (Windows).</summary>
    public static IPNetwork? FromTool(string text)
    {
        text = text.Trim();
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash > 0 && IPAddress.TryParse(text[(slash + 1)..], out var mask) && mask.AddressFamily == AddressFamily.InterNetwork && text[(slash + 1)..].Contains('.'))
        {
            var bits = mask.GetAddressBytes().Sum(b => System.Numerics.BitOperations.PopCount(b));
            text = text[..slash] + "/" + bits.ToString(CultureInfo.InvariantCulture);
        }

        try
        {
            return ParseOne(text, force: true);
        }
        catch (FirewallInputException)
        {
            return null;
        }
    }

    private static IPAddress Mask(IPAddress address, int prefix)
    {
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var keep = Math.Clamp(prefix - (i * 8), 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - keep));
        }

        return new IPAddress(bytes);
    }
}
