using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace OllamaContinuity.Firewall;

/// <summary>
/// Parses and checks -AllowFrom values before anything runs: IPv4/IPv6 addresses and CIDRs only (via
/// <see cref="IPNetwork"/>). Host names, shell metacharacters, empty values, prefixes out of range, host bits after
/// the prefix, and "everywhere" (0.0.0.0/0, ::/0) without force are rejected.
/// </summary>
public static class AllowFrom
{
    /// <summary>The port the module protects by default. The default value is 11434 (Ollama).</summary>
    public const int DefaultPort = 11434;

    public static IReadOnlyList<IPNetwork> Parse(IEnumerable<string?> values, bool force = false)
    {
        var result = new List<IPNetwork>();
        foreach (var raw in values)
        {
            var network = ParseOne(raw, force);
            if (!result.Contains(network))
            {
                result.Add(network);
            }
        }

        if (result.Count == 0)
        {
            throw new FirewallInputException("EmptyAllowFrom", "-AllowFrom needs at least one IPv4/IPv6 address or CIDR (for example 192.168.1.0/24 or fd00::/64).", null);
        }

        return Sort(result);
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
            if (!IPAddress.TryParse(value, out var address) || !IsPlain(value, address))
            {
                throw new FirewallInputException("InvalidAllowFrom", $"'{value}' is not an IPv4/IPv6 address or CIDR.", raw);
            }

            network = new IPNetwork(address, address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
        }
        else
        {
            var addressText = value[..slash];
            var prefixText = value[(slash + 1)..];
            if (!IPAddress.TryParse(addressText, out var address) || !IsPlain(addressText, address))
            {
                throw new FirewallInputException("InvalidAllowFrom", $"'{value}' is not an IPv4/IPv6 address or CIDR.", raw);
            }

            var max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
            if (prefixText.Length is 0 or > 3 || !prefixText.All(char.IsAsciiDigit) ||
                !int.TryParse(prefixText, NumberStyles.None, CultureInfo.InvariantCulture, out var prefix) || prefix > max)
            {
                throw new FirewallInputException("InvalidAllowFrom", $"'{value}' has an invalid prefix length: it must be 0 to {max} for an {(max == 32 ? "IPv4" : "IPv6")} address.", raw);
            }

            var canonical = new IPNetwork(Mask(address, prefix), prefix);
            if (!canonical.BaseAddress.Equals(address) || !IPNetwork.TryParse(value, out network))
            {
                throw new FirewallInputException("AllowFromHostBits", $"'{value}' has host bits set after the /{prefix} prefix. Did you mean {canonical}?", raw);
            }
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

    private static bool IsPlain(string text, IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 ? address.ScopeId == 0 : text.Count(c => c == '.') == 3;

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
